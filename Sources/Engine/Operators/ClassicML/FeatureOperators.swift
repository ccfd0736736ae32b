import Kernels
import Tensors

/// A float output from doubles.
private func floatTensor(_ values: [Double], _ shape: Shape, _ context: ExecutionContext) throws -> Tensor {
    let y = try context.allocate(.float, shape)
    let output = y.mutablePointer(as: Float.self)
    for (index, value) in values.enumerated() { output[index] = Float(value) }
    return y
}

/// A tensor of `type` (numeric) holding `values`.
private func numericTensor(_ values: [Double], _ type: DataType, _ shape: Shape, _ context: ExecutionContext) throws -> Tensor {
    switch type {
    case .float: return try floatTensor(values, shape, context)
    case .double: return Tensor(values, shape: shape)
    case .int64: return Tensor(values.map { Int64(clamping: $0) }, shape: shape)
    case .int32: return Tensor(values.map { Int32(clamping: $0) }, shape: shape)
    default: throw OpError("element type \(type) is not supported")
    }
}

private extension Int64 {
    /// `value` truncated, saturated at the ends of the range (NaN is 0).
    init(clamping value: Double) {
        if value.isNaN { self = 0 } else if value >= 9.2e18 { self = .max } else if value <= -9.2e18 { self = .min } else { self.init(value) }
    }
}

private extension Int32 {
    init(clamping value: Double) { self = Int32(clamping: Int64(clamping: value)) }
}

/// Per-feature parameters: one value for every feature, or one per feature of the last axis.
private func perFeature(_ values: [Double], _ name: String, width: Int) throws -> (Int) -> Double {
    if values.isEmpty { throw OpError.invalidArgument("'\(name)' is empty") }
    if values.count == 1 { return { _ in values[0] } }
    guard values.count == width else {
        throw OpError.invalidArgument("'\(name)' has \(values.count) values; the input has \(width) features")
    }
    return { values[$0] }
}

private func lastAxis(_ shape: Shape) -> Int { shape.rank == 0 ? 1 : shape[shape.rank - 1] }

/// A per-element feature transform (Scaler, Normalizer, Binarizer, Imputer): one numeric input of
/// the classic-ML feature types, one output of its shape, float or in the input's type (their
/// definitions' contracts say which).
private protocol FeatureTransform: Operator {
    func transform(_ x: Tensor, _ context: ExecutionContext) throws -> Tensor
}

extension FeatureTransform {
    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        [try transform(try inputs.required(0), context)]
    }
}

// MARK: Scaler, Normalizer, Binarizer, Imputer

/// Scaler (ai.onnx.ml 1): y = (x - offset) · scale per feature, float output.
struct Scaler: FeatureTransform {
    let offset: [Double]
    let scale: [Double]

    init(_ context: OperatorContext) throws {
        offset = (try context.floats("offset") ?? [0]).map(Double.init)
        scale = (try context.floats("scale") ?? [1]).map(Double.init)
    }

    func transform(_ x: Tensor, _ context: ExecutionContext) throws -> Tensor {
        let width = lastAxis(x.shape)
        let offset = try perFeature(offset, "offset", width: width), scale = try perFeature(scale, "scale", width: width)
        let values = x.doubles()
        let y = try context.allocate(.float, x.shape)
        let output = y.mutablePointer(as: Float.self)
        for (index, value) in values.enumerated() {
            let feature = width == 0 ? 0 : index % width
            output[index] = Float((value - offset(feature)) * scale(feature))
        }
        return y
    }
}

/// Normalizer (ai.onnx.ml 1): each row divided by its MAX, L1 or L2 norm (rows of zeros kept).
struct Normalizer: FeatureTransform {
    enum Norm { case max, l1, l2 }
    let norm: Norm

    init(_ context: OperatorContext) throws {
        switch try context.string("norm", default: "MAX") {
        case "MAX": norm = .max
        case "L1": norm = .l1
        case "L2": norm = .l2
        case let other: throw OpError("unknown norm '\(other)' (expected MAX, L1 or L2)")
        }
    }

    func transform(_ x: Tensor, _ context: ExecutionContext) throws -> Tensor {
        guard x.shape.rank == 1 || x.shape.rank == 2 else { throw OpError.invalidArgument("input must be [C] or [N, C], got \(x.shape)") }
        let width = lastAxis(x.shape)
        var values = x.doubles().map { Float($0) }
        if width > 0 {
            for start in stride(from: 0, to: values.count, by: width) {
                let row = start..<(start + width)
                let divisor: Float
                switch norm {
                case .max: divisor = values[row].max() ?? 0
                case .l1: divisor = values[row].reduce(0) { $0 + Swift.abs($1) }
                case .l2: divisor = values[row].reduce(0) { $0 + $1 * $1 }.squareRoot()
                }
                if divisor != 0 { for index in row { values[index] /= divisor } }
            }
        }
        return Tensor(values, shape: x.shape)
    }
}

/// Binarizer (ai.onnx.ml 1): 1 where x > threshold, else 0, in x's type.
struct Binarizer: FeatureTransform {
    let threshold: Double

    init(_ context: OperatorContext) throws { threshold = Double(try context.float("threshold", default: 0)) }

    func transform(_ x: Tensor, _ context: ExecutionContext) throws -> Tensor {
        return try numericTensor(x.doubles().map { $0 > threshold ? 1 : 0 }, x.dataType, x.shape, context)
    }
}

/// Imputer (ai.onnx.ml 1): replaces `replaced_value_*` (NaN: any NaN) with the imputed value of
/// the feature, in x's type.
struct Imputer: FeatureTransform {
    let imputed: [Double]
    let replacedFloat: Double
    let replacedInteger: Double

    init(_ context: OperatorContext) throws {
        let floats = try context.floats("imputed_value_floats") ?? [], ints = try context.ints("imputed_value_int64s") ?? []
        guard floats.isEmpty != ints.isEmpty else { throw OpError("set exactly one of 'imputed_value_floats' and 'imputed_value_int64s'") }
        imputed = floats.isEmpty ? ints.map(Double.init) : floats.map(Double.init)
        replacedFloat = Double(try context.float("replaced_value_float", default: 0))
        replacedInteger = Double(try context.int("replaced_value_int64", default: 0))
    }

    func transform(_ x: Tensor, _ context: ExecutionContext) throws -> Tensor {
        let width = lastAxis(x.shape)
        let value = try perFeature(imputed, "imputed values", width: width)
        let replaced = x.dataType.isFloatingPoint ? replacedFloat : replacedInteger
        let result = x.doubles().enumerated().map { index, element in
            let matches = replaced.isNaN ? element.isNaN : element == replaced
            return matches ? value(width == 0 ? 0 : index % width) : element
        }
        return try numericTensor(result, x.dataType, x.shape, context)
    }
}

// MARK: Encoders

/// A lookup key: integers, reals (NaN equal to NaN) and strings.
enum EncodingKey: Hashable, Sendable {
    case integer(Int64)
    case real(UInt64)
    case text(String)

    static func real(_ value: Double) -> EncodingKey { .real(value.isNaN ? Double.nan.bitPattern : (value == 0 ? 0 : value.bitPattern)) }

    /// The keys of a tensor's elements: strings as text, integers exactly, reals by value.
    static func keys(of x: Tensor) -> [EncodingKey] {
        if x.dataType == .string { return x.strings.map { .text($0) } }
        if x.dataType.isFloatingPoint { return x.doubles().map { .real($0) } }
        if x.dataType == .uint64 { return x.scalars(as: UInt64.self).map { .integer(Int64(truncatingIfNeeded: $0)) } }
        return x.integers().map { .integer(Int64($0)) }
    }
}

/// OneHotEncoder (ai.onnx.ml 1): x [...] → float [..., categories], one 1 per known category
/// (`zeros` = 0 makes an unknown category an error).
struct OneHotEncoder: Operator {
    let categories: [EncodingKey: Int]
    let count: Int
    let unknownIsZeros: Bool

    init(_ context: OperatorContext) throws {
        let ints = try context.ints("cats_int64s") ?? [], strings = try context.strings("cats_strings") ?? []
        guard ints.isEmpty != strings.isEmpty else { throw OpError("set exactly one of 'cats_int64s' and 'cats_strings'") }
        let keys: [EncodingKey] = strings.isEmpty ? ints.map { .integer(Int64($0)) } : strings.map { .text($0) }
        var categories: [EncodingKey: Int] = [:]
        for (index, key) in keys.enumerated() where categories[key] == nil { categories[key] = index }
        self.categories = categories
        count = keys.count
        unknownIsZeros = try context.int("zeros", default: 1) != 0
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [TensorType(.float, nil)] }
        return [TensorType(.float, x.dims.map { $0 + [.fixed(count)] })]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let keys: [EncodingKey]
        if x.dataType.isFloatingPoint {
            // Numbers are matched as the integers they truncate to.
            keys = x.doubles().map { .integer(Int64(clamping: $0)) }
        } else {
            keys = EncodingKey.keys(of: x)
        }
        let y = try context.allocate(.float, Shape(x.shape.dims + [count]))
        let output = y.mutablePointer(as: Float.self)
        output.initialize(repeating: 0, count: y.elementCount)
        for (index, key) in keys.enumerated() {
            if let category = categories[key] {
                output[index * count + category] = 1
            } else if !unknownIsZeros {
                throw OpError.invalidArgument("unknown category \(key) at element \(index), and 'zeros' is 0")
            }
        }
        return [y]
    }
}

/// A table from keys to values of one element type, with a default: LabelEncoder and
/// CategoryMapper. Values are kept as a 1-D tensor and gathered by index.
struct EncodingTable: Sendable {
    let index: [EncodingKey: Int]
    let values: Tensor
    let defaultValue: Tensor

    init(keys: [EncodingKey], values: Tensor, defaultValue: Tensor) throws {
        guard keys.count == values.elementCount else { throw OpError("\(keys.count) keys but \(values.elementCount) values") }
        var index: [EncodingKey: Int] = [:]
        for (position, key) in keys.enumerated() where index[key] == nil { index[key] = position }
        self.index = index
        self.values = values.reshaped([values.elementCount])
        self.defaultValue = defaultValue.reshaped([1])
    }

    func map(_ x: Tensor) -> Tensor {
        let keys = EncodingKey.keys(of: x)
        if values.dataType == .string {
            let table = values.strings, fallback = defaultValue.strings[0]
            return Tensor(strings: keys.map { index[$0].map { table[$0] } ?? fallback }, shape: x.shape)
        }
        let size = values.dataType.byteSize
        let y = Tensor(uninitialized: values.dataType, shape: x.shape)
        for (position, key) in keys.enumerated() {
            let source = index[key].map { values.rawPointer + $0 * size } ?? defaultValue.rawPointer
            (y.rawPointer + position * size).copyMemory(from: source, byteCount: size)
        }
        return y
    }
}

/// LabelEncoder (ai.onnx.ml 1, 2, 4): maps each element through `keys_*` → `values_*` (opset 1:
/// a string to its index in `classes_strings`, an int64 index to its string).
struct LabelEncoder: Operator {
    /// Opset 2 and later.
    let table: EncodingTable?
    /// The key type the input must have (nil: opset 1, string or int64).
    let keyType: DataType?
    /// Opset 1: string → index (default `default_int64`) and index → string (`default_string`).
    let legacy: (toIndices: EncodingTable, toStrings: EncodingTable)?

    init(_ context: OperatorContext) throws {
        if context.version == 1 {
            let classes = try context.strings("classes_strings") ?? []
            let toIndices = try EncodingTable(keys: classes.map { .text($0) }, values: Tensor(classes.indices.map { Int64($0) }, shape: [classes.count]),
                                              defaultValue: Tensor([Int64(try context.int("default_int64", default: -1))], shape: [1]))
            let toStrings = try EncodingTable(keys: classes.indices.map { .integer(Int64($0)) }, values: Tensor(strings: classes, shape: [classes.count]),
                                              defaultValue: Tensor(strings: [try context.string("default_string", default: "_Unused")], shape: [1]))
            legacy = (toIndices, toStrings)
            table = nil
            keyType = nil
            return
        }
        legacy = nil
        let keys: [EncodingKey], keyType: DataType
        if let tensor = try context.tensor("keys_tensor") {
            (keys, keyType) = (EncodingKey.keys(of: tensor), tensor.dataType)
        } else if let strings = try context.strings("keys_strings") {
            (keys, keyType) = (strings.map { .text($0) }, .string)
        } else if let ints = try context.ints("keys_int64s") {
            (keys, keyType) = (ints.map { .integer(Int64($0)) }, .int64)
        } else if let floats = try context.floats("keys_floats") {
            (keys, keyType) = (floats.map { .real(Double($0)) }, .float)
        } else {
            throw OpError("missing keys ('keys_strings', 'keys_int64s', 'keys_floats' or 'keys_tensor')")
        }
        self.keyType = keyType
        let values: Tensor, fallback: Tensor
        if let tensor = try context.tensor("values_tensor") {
            values = tensor
            fallback = try context.tensor("default_tensor") ?? Self.defaultValue(for: tensor.dataType)
        } else if let strings = try context.strings("values_strings") {
            values = Tensor(strings: strings, shape: [strings.count])
            fallback = Tensor(strings: [try context.string("default_string", default: "_Unused")], shape: [1])
        } else if let ints = try context.ints("values_int64s") {
            values = Tensor(ints.map(Int64.init), shape: [ints.count])
            fallback = Tensor([Int64(try context.int("default_int64", default: -1))], shape: [1])
        } else if let floats = try context.floats("values_floats") {
            values = Tensor(floats, shape: [floats.count])
            fallback = Tensor([try context.float("default_float", default: -0.0)], shape: [1])
        } else {
            throw OpError("missing values ('values_strings', 'values_int64s', 'values_floats' or 'values_tensor')")
        }
        guard fallback.dataType == values.dataType, fallback.elementCount == 1 else {
            throw OpError("the default must be one \(values.dataType) value")
        }
        table = try EncodingTable(keys: keys, values: values, defaultValue: fallback)
    }

    private static func defaultValue(for type: DataType) -> Tensor {
        switch type {
        case .string: Tensor(strings: ["_Unused"], shape: [1])
        case .int64: Tensor([Int64(-1)], shape: [1])
        case .float: Tensor([Float(-0.0)], shape: [1])
        case .double: Tensor([Double(-0.0)], shape: [1])
        default: Tensor(zeros: type, shape: [1])
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        guard let table, let keyType else {
            guard x.dataType == .string || x.dataType == .int64 else { throw OpError("input must be string or int64, not \(x.dataType)") }
            return [TensorType(x.dataType == .string ? .int64 : .string, x.dims)]
        }
        try checkKeyType(x.dataType, keyType)
        return [TensorType(table.values.dataType, x.dims)]
    }

    private func checkKeyType(_ type: DataType, _ keyType: DataType) throws {
        guard type == keyType || (type.isInteger && keyType.isInteger) else {
            throw OpError("the keys are \(keyType) but the input is \(type)")
        }
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        if let legacy {
            switch x.dataType {
            case .string: return [legacy.toIndices.map(x)]
            case .int64: return [legacy.toStrings.map(x)]
            default: throw OpError("input must be string or int64, not \(x.dataType)")
            }
        }
        guard let table, let keyType else { throw OpError("the encoder has no table") }
        try checkKeyType(x.dataType, keyType)
        return [table.map(x)]
    }
}

/// CategoryMapper (ai.onnx.ml 1): strings → int64 through `cats_strings`/`cats_int64s`, or back.
struct CategoryMapper: Operator {
    let toIntegers: EncodingTable
    let toStrings: EncodingTable

    init(_ context: OperatorContext) throws {
        let ints = try context.ints("cats_int64s") ?? [], strings = try context.strings("cats_strings") ?? []
        guard ints.count == strings.count else { throw OpError("'cats_int64s' has \(ints.count) values and 'cats_strings' \(strings.count)") }
        toIntegers = try EncodingTable(keys: strings.map { .text($0) }, values: Tensor(ints.map(Int64.init), shape: [ints.count]),
                                       defaultValue: Tensor([Int64(try context.int("default_int64", default: -1))], shape: [1]))
        toStrings = try EncodingTable(keys: ints.map { .integer(Int64($0)) }, values: Tensor(strings: strings, shape: [strings.count]),
                                      defaultValue: Tensor(strings: [try context.string("default_string", default: "_Unused")], shape: [1]))
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType == .string ? .int64 : .string, x.dims)]
    }

    /// Strings to int64, int64 to strings (the contract admits nothing else).
    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        return [x.dataType == .string ? toIntegers.map(x) : toStrings.map(x)]
    }
}

// MARK: Feature selection and assembly

/// ArrayFeatureExtractor (ai.onnx.ml 1): the elements of the last axis of X at the indices Y
/// (a rank-1 X gives [1, len(Y)]).
struct ArrayFeatureExtractor: Operator {
    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        guard let dims = x.dims, let y = inputs.type(1), let count = y.shape?.elementCount else { return [TensorType(x.dataType, nil)] }
        return [TensorType(x.dataType, dims.count <= 1 ? [.fixed(1), .fixed(count)] : Array(dims.dropLast()) + [.fixed(count)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let indices = try Layout.indices(try inputs.required(1), "Y")
        guard x.shape.rank >= 1 else { throw OpError.invalidArgument("X must have at least one dimension") }
        let width = lastAxis(x.shape)
        for index in indices where index < 0 || index >= width {
            throw OpError.invalidArgument("index \(index) is out of range for a last dimension of \(width)")
        }
        let outer = width == 0 ? 0 : x.elementCount / width
        let shape: Shape = x.shape.rank == 1 ? [1, indices.count] : Shape(x.shape.dims.dropLast() + [indices.count])
        if x.dataType == .string {
            let strings = x.strings
            var result: [String] = []
            result.reserveCapacity(outer * indices.count)
            for row in 0..<outer { for index in indices { result.append(strings[row * width + index]) } }
            return [Tensor(strings: result, shape: shape)]
        }
        let size = x.dataType.byteSize
        let y = try context.allocate(x.dataType, shape)
        for row in 0..<outer {
            for (column, index) in indices.enumerated() {
                (y.rawPointer + (row * indices.count + column) * size).copyMemory(from: x.rawPointer + (row * width + index) * size, byteCount: size)
            }
        }
        return [y]
    }
}

/// FeatureVectorizer (ai.onnx.ml 1): concatenates its inputs' columns, each input padded with zeros
/// or cut to its `inputdimensions` entry, into float [N, Σ inputdimensions].
struct FeatureVectorizer: Operator {
    let dimensions: [Int]

    init(_ context: OperatorContext) throws {
        dimensions = try context.ints("inputdimensions") ?? []
        guard dimensions.allSatisfy({ $0 >= 0 && $0 <= 1 << 24 }) else { throw OpError("'inputdimensions' must be between 0 and 2^24") }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        [TensorType(.float, [rowDim(inputs.type(0)), .fixed(dimensions.reduce(0, +))])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        guard inputs.count == dimensions.count else {
            throw OpError("\(inputs.count) inputs but \(dimensions.count) 'inputdimensions'")
        }
        let tensors = try inputs.indices.map { try inputs.required($0) }
        let rows = tensors.first.map { $0.shape.rank <= 1 ? 1 : $0.shape[0] } ?? 0
        let total = dimensions.reduce(0, +)
        let y = try context.allocate(.float, [rows, total])
        let output = y.mutablePointer(as: Float.self)
        output.initialize(repeating: 0, count: y.elementCount)
        var offset = 0
        for (tensor, dimension) in zip(tensors, dimensions) {
            let inputRows = tensor.shape.rank <= 1 ? 1 : tensor.shape[0]
            guard inputRows == rows else { throw OpError.invalidArgument("inputs have \(rows) and \(inputRows) rows") }
            let width = rows == 0 ? 0 : tensor.elementCount / rows
            let values = tensor.doubles()
            for row in 0..<rows {
                for column in 0..<min(width, dimension) { output[row * total + offset + column] = Float(values[row * width + column]) }
            }
            offset += dimension
        }
        return [y]
    }
}

// MARK: ZipMap

/// ZipMap (ai.onnx.ml 1): float [N, C] → one map per row from the class labels to the row's
/// values. The engine carries the values as the float tensor itself; the session reports the
/// output as a sequence of maps (`ValueInfo.mapKeys`) and the wire formats write the maps.
struct ZipMap: Operator {
    let keys: Tensor

    init(_ context: OperatorContext) throws {
        let labels = try context.classLabels(ints: "classlabels_int64s", strings: "classlabels_strings")
        switch labels {
        case .integers(let values): keys = Tensor(values, shape: [values.count])
        case .strings(let values): keys = Tensor(strings: values, shape: [values.count])
        }
        guard keys.elementCount > 0 else { throw OpError("set 'classlabels_int64s' or 'classlabels_strings'") }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(.float, [rowDim(x), .fixed(keys.elementCount)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let columns = lastAxis(x.shape)
        guard columns == keys.elementCount, x.shape.rank <= 2 else {
            throw OpError.invalidArgument("input \(x.shape) does not have one column per label (\(keys.elementCount))")
        }
        return [x.reshaped([x.shape.rank == 2 ? x.shape[0] : 1, columns])]
    }
}
