import Dispatch
import HTTP
import Testing

@Suite struct MemoryBudgetTests {
    @Test func reservationsFitWithinTheLimitAndReleasesGiveBack() {
        let budget = MemoryBudget(limit: 100)
        #expect(budget.reserve(60))
        #expect(!budget.reserve(41))  // refused whole: nothing reserved
        #expect(budget.bytesInUse == 60)
        #expect(budget.reserve(40))
        #expect(!budget.reserve(1))
        budget.release(70)
        #expect(budget.bytesInUse == 30)
        #expect(budget.reserve(70))
        budget.release(100)
        #expect(budget.bytesInUse == 0)
    }

    @Test func hostileCountsNeitherOverflowNorGoNegative() {
        let budget = MemoryBudget(limit: .max)
        #expect(budget.reserve(.max - 1))
        #expect(!budget.reserve(2))  // would overflow
        #expect(!budget.reserve(-5))
        budget.release(.max)
        #expect(budget.bytesInUse == 0)
        budget.release(10)  // more than reserved: stops at zero
        budget.release(-3)
        #expect(budget.bytesInUse == 0)
        #expect(MemoryBudget(limit: -1).limit == 0)
    }

    @Test func concurrentReservationsNeverExceedTheLimit() async {
        let budget = MemoryBudget(limit: 1000)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<10_000 where budget.reserve(7) {
                        #expect(budget.bytesInUse <= 1000)
                        budget.release(7)
                    }
                }
            }
        }
        #expect(budget.bytesInUse == 0)
    }

    @Test func reservationGrowsReleasesOnceAndReleasesWhenFreed() {
        let budget = MemoryBudget(limit: 100)
        let reservation = MemoryBudget.Reservation(budget: budget)
        #expect(reservation.grow(to: 30))
        #expect(reservation.grow(to: 20))  // already holds more
        #expect(reservation.bytes == 30)
        #expect(!reservation.grow(to: 101))
        #expect(reservation.bytes == 30)
        #expect(budget.bytesInUse == 30)
        reservation.release()
        reservation.release()
        #expect(budget.bytesInUse == 0)
        do {
            let forgotten = MemoryBudget.Reservation(budget: budget)
            #expect(forgotten.grow(to: 50))
            withExtendedLifetime(forgotten) { #expect(budget.bytesInUse == 50) }
        }
        #expect(budget.bytesInUse == 0)
    }
}
