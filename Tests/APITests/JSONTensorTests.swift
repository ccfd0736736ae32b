import API
import Serving
import Tensors
import Testing

/// Tensors from JSON values: the value count always equals the shape's element count before
/// anything is allocated (the ragged-array defects of issue 12 were heap overflows and reads of
/// uninitialised memory).
@Suite struct JSONTensorTests {
    func value(_ text: String) throws -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    /// Allocates plainly, and counts allocations, so a test can tell a refusal came before one.
    final class CountingAllocator: @unchecked Sendable {
        var allocations = 0
        func allocate(_ dataType: DataType, _ shape: Shape) -> Tensor {
            allocations += 1
            return Tensor(uninitialized: dataType, shape: shape)
        }
    }

    func tensor(_ text: String, _ dataType: DataType = .float, layout: JSONTensor.Layout = .nested,
                allocator: CountingAllocator = CountingAllocator()) throws -> Tensor {
        try JSONTensor.tensor(try value(text), dataType: dataType, name: "x", layout: layout, allocate: allocator.allocate)
    }

    /// The refusal's message, or a recorded issue when the value was accepted.
    /// Shape and count refusals come before any allocation; element-type ones may come while
    /// filling (`beforeAllocating: false`).
    func refusal(_ text: String, _ dataType: DataType = .float, layout: JSONTensor.Layout = .nested,
                 beforeAllocating: Bool = true) throws -> String {
        let allocator = CountingAllocator()
        do {
            let accepted = try tensor(text, dataType, layout: layout, allocator: allocator)
            Issue.record("accepted as \(accepted.shape): \(text.prefix(80))")
            return ""
        } catch let error as ServingError {
            #expect(error.kind == .invalidArgument)
            #expect(!beforeAllocating || allocator.allocations == 0, "refused after allocating")
            return error.message
        }
    }

    @Test func nestedValuesGiveTheirShape() throws {
        let matrix = try tensor("[[1, 2, 3], [4, 5, 6]]")
        #expect(matrix.shape == [2, 3] && matrix.scalars(as: Float.self) == [1, 2, 3, 4, 5, 6])
        let mixedTree = try tensor(#"[["a", "b"], ["c", {"b64": "ZA=="}]]"#, .string)
        #expect(mixedTree.shape == [2, 2] && mixedTree.strings == ["a", "b", "c", "d"])
        let bools = try tensor("[[true], [false]]", .bool)
        #expect(bools.shape == [2, 1] && bools.scalars(as: Bool.self) == [true, false])
        #expect(try tensor("7", .int64).shape == [])
        #expect(try tensor("[[], []]").shape == [2, 0])
        let big = try tensor("[9007199254740993, -5]", .int64)
        #expect(big.scalars(as: Int64.self) == [9_007_199_254_740_993, -5])
    }

    @Test func raggedNestingIsRefusedNamingTheInput() throws {
        // Two million ones, then an empty list: was a heap overflow.
        let ones = "[" + String(repeating: "1,", count: 2_000_000) + "[]]"
        #expect(try refusal(ones).contains("input 'x' is a ragged nested list"))
        // 47 numbers then a list of 64: was accepted as [48, 64] from uninitialised memory.
        let short = "[" + String(repeating: "3,", count: 47) + "[" + Array(repeating: "1", count: 64).joined(separator: ",") + "]]"
        #expect(try refusal(short).contains("element [47]"))
        // A 64-level ragged nesting: trapped on the shape product.
        let deep = String(repeating: "[", count: 64) + "1" + String(repeating: "]", count: 64)
        let raggedDeep = "[" + deep + ", 1]"
        #expect(try refusal(raggedDeep).contains("ragged"))
        #expect(try refusal("[[1, 2], [3]]").contains("element [1] has shape [1] where the first element at this depth has [2]"))
        #expect(try refusal("[[1, 2], 3]").contains("element [1] is a number"))
        #expect(try refusal("[1, [2]]").contains("element [1] is a list"))
        #expect(try refusal(#"[["a"], "b"]"#, .string).contains("ragged"))
    }

    @Test func declaredShapesNeedExactlyTheirValueCount() throws {
        let flat = try tensor("[1, 2, 3, 4, 5, 6]", layout: .declared([2, 3]))
        #expect(flat.shape == [2, 3] && flat.scalars(as: Float.self) == [1, 2, 3, 4, 5, 6])
        // Nested, as Triton reads it, if the count is right.
        #expect(try tensor("[[1, 2, 3], [4, 5, 6]]", layout: .declared([3, 2])).scalars(as: Float.self) == [1, 2, 3, 4, 5, 6])
        #expect(try refusal("[[1, 2], [3, 4, 5, 6]]", layout: .declared([2, 3])).contains("ragged"))
        #expect(try refusal("[1, 2, 3, 4, 5]", layout: .declared([2, 3])).contains("has 5 values in 'data' but shape [2, 3] needs 6"))
        // The issue's Open Inference cases.
        let sixtyFour = Array(repeating: "1.0", count: 64).joined(separator: ",")
        #expect(try refusal("[" + sixtyFour + ", []]", layout: .declared([1, 64])).contains("element [64] is a list"))
        #expect(try refusal("[1,1,1,1,1,[1,1]]", .int64, layout: .declared([5])).contains("element [5] is a list"))
        let sixtyThree = Array(repeating: "2.0", count: 63).joined(separator: ",")
        #expect(try refusal("[" + sixtyThree + ", [" + sixtyThree + "]]", layout: .declared([63, 64])).contains("ragged"))
        #expect(try refusal("[1]", layout: .declared([2147483647, 2147483647, 2147483647])).contains("overflows"))
    }

    @Test func elementTypesFollowTFServingsRules() throws {
        #expect(try refusal("[1.5]", .int32, beforeAllocating: false).contains("is not of expected type"))
        #expect(try refusal("[300]", .uint8, beforeAllocating: false).contains("out of range"))
        #expect(try refusal("[1]", .bool, beforeAllocating: false).contains("Type: Number is not of expected type: bool"))
        #expect(try refusal("[true]", beforeAllocating: false).contains("is not of expected type: float"))
        #expect(try refusal(#"[{"b64": "!!"}]"#, .string, beforeAllocating: false).contains("invalid base64"))
        #expect(try tensor("[1e300]").scalars(as: Float.self) == [.infinity])
    }
}
