import Engine
import Foundation
import Tensors
import Testing

@Suite struct ReductionOperatorTests {
    /// 2×3×4 values 1...24.
    private static let x = Tensor((1...24).map(Float.init), shape: [2, 3, 4])
    private static func axes(_ values: [Int64]) -> Tensor { Tensor(values, shape: [values.count]) }

    @Test func sumOverAxesFromInputOrAttribute() throws {
        let keep = try runNode("ReduceSum", [Self.x, Self.axes([1])], opset: 13)[0]
        #expect(keep.shape == [2, 1, 4] && keep.floats == [15, 18, 21, 24, 51, 54, 57, 60])
        let drop = try runNode("ReduceSum", [Self.x, Self.axes([-1, 0])], attributes: ["keepdims": .int(0)], opset: 13)[0]
        #expect(drop.shape == [3] && drop.floats == [10 + 58, 26 + 74, 42 + 90])
        let attribute = try runNode("ReduceSum", [Self.x], attributes: ["axes": .ints([0, 2])], opset: 11)[0]
        #expect(attribute.shape == [1, 3, 1] && attribute.floats == [68, 100, 132])
        let all = try runNode("ReduceSum", [Self.x], opset: 13)[0]
        #expect(all.shape == [1, 1, 1] && all.floats == [300])
        let noop = try runNode("ReduceSum", [Self.x, Self.axes([])], attributes: ["noop_with_empty_axes": .int(1)], opset: 13)[0]
        #expect(noop.shape == [2, 3, 4] && noop.floats == Self.x.floats)
    }

    @Test func everyFunctionOverNonAdjacentAxes() throws {
        let values = Self.x.floats
        // Groups of the reduction over axes 0 and 2: for each middle index j, values at [i, j, k].
        var groups = [[Float]](repeating: [], count: 3)
        for i in 0..<2 {
            for j in 0..<3 {
                for k in 0..<4 { groups[j].append(values[i * 12 + j * 4 + k]) }
            }
        }
        let cases: [(String, ([Float]) -> Float)] = [
            ("ReduceMean", { $0.reduce(0, +) / Float($0.count) }),
            ("ReduceMax", { $0.max()! }), ("ReduceMin", { $0.min()! }),
            ("ReduceProd", { $0.reduce(1, *) }),
            ("ReduceL1", { $0.reduce(0) { $0 + abs($1) } }),
            ("ReduceL2", { sqrt($0.reduce(0) { $0 + $1 * $1 }) }),
            ("ReduceSumSquare", { $0.reduce(0) { $0 + $1 * $1 } }),
            ("ReduceLogSum", { log($0.reduce(0, +)) }),
            ("ReduceLogSumExp", { log($0.reduce(0) { $0 + exp($1) }) }),
        ]
        for (opType, function) in cases {
            let y = try runNode(opType, [Self.x, Self.axes([0, 2])], attributes: ["keepdims": .int(0)], opset: 18)[0]
            #expect(y.shape == [3] && isClose(y.floats, groups.map(function)), "\(opType)")
            let older = try runNode(opType, [Self.x], attributes: ["axes": .ints([0, 2]), "keepdims": .int(0)], opset: 13)[0]
            #expect(older.floats == y.floats, "\(opType) opset 13")
        }
    }

    @Test func integersBoolsAndEmptySets() throws {
        let ints = Tensor([1, 2, 3, 4, 5, 6] as [Int32], shape: [2, 3])
        #expect(try runNode("ReduceMean", [ints, Self.axes([1])], opset: 18)[0].scalars(as: Int32.self) == [2, 5])
        #expect(try runNode("ReduceProd", [ints, Self.axes([0])], opset: 18)[0].scalars(as: Int32.self) == [4, 10, 18])
        let flags = Tensor([true, false, false, false], shape: [2, 2])
        #expect(try runNode("ReduceMax", [flags, Self.axes([1])], opset: 20)[0].scalars(as: Bool.self) == [true, false])
        #expect(try runNode("ReduceMin", [flags, Self.axes([1])], opset: 20)[0].scalars(as: Bool.self) == [false, false])
        let empty = Tensor([Float](), shape: [2, 0, 3])
        #expect(try runNode("ReduceSum", [empty, Self.axes([1])], opset: 13)[0].floats == [0, 0, 0, 0, 0, 0])
        #expect(try runNode("ReduceProd", [empty, Self.axes([1])], opset: 18)[0].floats == [1, 1, 1, 1, 1, 1])
        #expect(try runNode("ReduceMax", [empty, Self.axes([1])], opset: 18)[0].floats.allSatisfy { $0 == -.infinity })
        #expect(try runNode("ReduceLogSumExp", [empty, Self.axes([1])], opset: 18)[0].floats.allSatisfy { $0 == -.infinity })
        let emptyBools = try runNode("ReduceMin", [Tensor([Bool](), shape: [0]), Self.axes([0])], opset: 20)[0]
        #expect(emptyBools.scalars(as: Bool.self) == [true])
    }

    @Test func noopStillAppliesTheElementFunction() throws {
        let x = Tensor([-2, 3] as [Float], shape: [2])
        let squares = try runNode("ReduceSumSquare", [x], attributes: ["noop_with_empty_axes": .int(1)], opset: 18)[0]
        #expect(squares.floats == [4, 9])
        #expect(try runNode("ReduceL1", [Tensor(scalar: Float(-5))], opset: 18)[0].floats == [5])
    }

    @Test func typesAndErrors() throws {
        let type = TensorType(.float, [.symbolic("batch"), .fixed(3), .fixed(4)])
        #expect(try inferTypes("ReduceMean", [type], attributes: ["axes": .ints([-1]), "keepdims": .int(0)], opset: 13)
                == [TensorType(.float, [.symbolic("batch"), .fixed(3)])])
        #expect(try inferTypes("ReduceMean", [type, TensorType(.int64, [.fixed(1)])], opset: 18,
                               constants: [nil, Self.axes([1])]) == [TensorType(.float, [.symbolic("batch"), .fixed(1), .fixed(4)])])
        #expect(try inferTypes("ReduceMean", [type, TensorType(.int64, [.fixed(1)])], opset: 18)
                == [TensorType(.float, [.unknown, .unknown, .unknown])])
        #expect(try inferTypes("ReduceMean", [type, TensorType(.int64, [.fixed(1)])], attributes: ["keepdims": .int(0)], opset: 18)
                == [TensorType(.float, nil)])
        #expect(failure { try runNode("ReduceSum", [Self.x, Self.axes([3])], opset: 13) }?.isInvalidArgument("axis 3") == true)
        #expect(failure { try runNode("ReduceL2", [Tensor([1] as [Int32], shape: [1])], opset: 18) }?.isInvalidArgument("int32") == true)
    }

    @Test func argMaxAndArgMin() throws {
        let x = Tensor([1, 3, 3, 0, 5, 5, 2, 0] as [Float], shape: [2, 4])
        #expect(try runNode("ArgMax", [x], attributes: ["axis": .int(1)])[0].scalars(as: Int64.self) == [1, 0])
        let last = try runNode("ArgMax", [x], attributes: ["axis": .int(-1), "select_last_index": .int(1), "keepdims": .int(0)])[0]
        #expect(last.shape == [2] && last.scalars(as: Int64.self) == [2, 1])
        let minimum = try runNode("ArgMin", [x])[0]
        #expect(minimum.shape == [1, 4] && minimum.scalars(as: Int64.self) == [0, 0, 1, 0])
        #expect(try inferTypes("ArgMin", [TensorType(.int32, [.symbolic("n"), .fixed(4)])], attributes: ["keepdims": .int(0)])
                == [TensorType(.int64, [.fixed(4)])])
        #expect(failure { try runNode("ArgMax", [Tensor([Float](), shape: [0, 2])]) }?.isInvalidArgument("empty") == true)
    }
}
