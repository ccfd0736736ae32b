package import Tensors

extension JSONWriter {
    /// Maps from `keys` (ints or strings) to float values, one object per row of `values`
    /// ([rows, keys] in row-major order): `dims` are the rows' dimensions (empty: one object at
    /// element `offset`), as `tensor` nests lists. Integer keys are written as strings, since JSON
    /// keys are strings (as Python's json module writes {0: 0.5}).
    package mutating func maps(_ values: Tensor, keys: Tensor, dims: ArraySlice<Int>, offset: Int) {
        let names = keys.dataType == .string ? keys.strings : keys.integers().map(String.init)
        let numbers = values.doubles()
        func object(_ start: Int, into writer: inout JSONWriter) {
            writer.raw("{")
            for (index, name) in names.enumerated() {
                if index > 0 { writer.comma() }
                writer.key(name)
                let position = start + index
                writer.number(Float(position < numbers.count ? numbers[position] : 0))
            }
            writer.raw("}")
        }
        func nested(_ dims: ArraySlice<Int>, _ start: Int, into writer: inout JSONWriter) {
            guard let count = dims.first else { return object(start, into: &writer) }
            let stride = dims.dropFirst().reduce(names.count, *)
            writer.raw("[")
            for item in 0..<count {
                if item > 0 { writer.comma() }
                nested(dims.dropFirst(), start + item * stride, into: &writer)
            }
            writer.raw("]")
        }
        nested(dims, offset, into: &self)
    }

    /// The JSON text of each row's map, for wire formats whose tensors cannot hold objects.
    package static func mapTexts(_ values: Tensor, keys: Tensor) -> [String] {
        let columns = keys.elementCount
        let rows = columns == 0 ? 0 : values.elementCount / columns
        return (0..<rows).map { row in
            var writer = JSONWriter()
            writer.maps(values, keys: keys, dims: [][...], offset: row * columns)
            return String(decoding: writer.bytes, as: UTF8.self)
        }
    }
}

extension JSONWriter {
    /// One map value as a JSON object: keys as strings (integers written out), values as the
    /// tensor writer writes each element.
    package mutating func map(_ map: TensorMap) {
        let names = map.keys.dataType == .string ? map.keys.strings : map.keys.integers().map(String.init)
        raw("{")
        for (index, name) in names.enumerated() {
            if index > 0 { comma() }
            key(name)
            tensor(map.values, dims: [][...], offset: index)
        }
        raw("}")
    }
}
