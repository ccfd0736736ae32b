import Engine
import Tensors
import Testing

private typealias Ops = TensorOpsHarness

@Suite struct VisionOperatorTests {
    // MARK: BitCast

    @Test func bitCastRelabelsBitsOfTheSameWidth() throws {
        let floats = Tensor([1, -2, 0.5] as [Float], shape: [3])
        let ints = try Ops.one("BitCast", opset: 26, [floats], ["to": .int(Int(DataType.int32.rawValue))])
        #expect(ints.shape == [3] && ints.scalars(as: Int32.self) == [1, -2, 0.5].map { Int32(bitPattern: Float($0).bitPattern) })
        let bytes = Tensor([0, 1, 255] as [UInt8], shape: [3])
        // Bool bytes hold 0 or 1 whatever the source byte was.
        #expect(try Ops.one("BitCast", opset: 26, [bytes], ["to": .int(Int(DataType.bool.rawValue))]).scalars(as: Bool.self) == [false, true, true])
        let nibbles = Tensor([UInt4(narrowing: 15, saturate: false), UInt4(narrowing: 7, saturate: false)], shape: [2])
        let signed = try Ops.one("BitCast", opset: 26, [nibbles], ["to": .int(Int(DataType.int4.rawValue))])
        #expect(signed.scalars(as: Int4.self).map(\.widened) == [-1, 7])
    }

    @Test func bitCastRefusesOtherWidthsAndStrings() {
        let floats = Tensor([1] as [Float], shape: [1])
        #expect(Ops.error { try Ops.one("BitCast", opset: 26, [floats], ["to": .int(Int(DataType.int64.rawValue))]) }?
            .isFailure("32 bits") == true)
        #expect(Ops.error { try Ops.one("BitCast", opset: 26, [floats], ["to": .int(Int(DataType.string.rawValue))]) }?
            .isInvalidNode("element type 8") == true)
    }

    // MARK: CenterCropPad

    @Test func centerCropPadCropsAndPadsEachAxis() throws {
        let x = Ops.iota([3, 4])
        // Rows 3 → 5 (one zero row each side), columns 4 → 1 (an odd difference: the extra one at the end).
        let y = try Ops.one("CenterCropPad", opset: 18, [x, Ops.int64s([5, 1])])
        #expect(y.shape == [5, 1] && y.scalars(as: Float.self) == [0, 1, 5, 9, 0])
        let strings = Tensor(strings: ["a", "b", "c"], shape: [3])
        let padded = try Ops.one("CenterCropPad", opset: 18, [strings, Ops.int64s([4])])
        #expect(padded.strings == ["a", "b", "c", ""])
        let axes = try Ops.one("CenterCropPad", opset: 18, [x, Ops.int64s([2])], ["axes": .ints([-1])])
        #expect(axes.shape == [3, 2] && axes.scalars(as: Float.self) == [1, 2, 5, 6, 9, 10])
    }

    @Test func centerCropPadChecksItsSizes() {
        let x = Ops.iota([3, 4])
        #expect(Ops.error { try Ops.one("CenterCropPad", opset: 18, [x, Ops.int64s([2])]) }?.isInvalidArgument("for 2 axes") == true)
        #expect(Ops.error { try Ops.one("CenterCropPad", opset: 18, [x, Ops.int64s([2, -1])]) }?.isInvalidArgument("negative") == true)
        #expect(Ops.error { try Ops.one("CenterCropPad", opset: 18, [x, Ops.int64s([1 << 40, 1 << 40])]) }?.isInvalidArgument("too large") == true)
    }

    // MARK: Col2Im

    /// Col2Im against a direct sum over kernel offsets and block positions (2-D, odd sizes, pads,
    /// strides, dilations).
    @Test func col2ImMatchesTheDefinition() throws {
        let image = [5, 7], block = [2, 3], strides = [2, 1], dilations = [1, 2], pads = [1, 0, 0, 1]
        var counts: [Int] = []
        for d in 0..<2 {
            let span: Int = image[d] + pads[d] + pads[d + 2] - dilations[d] * (block[d] - 1) - 1
            counts.append(span / strides[d] + 1)
        }
        let channels = 2, kernel = block[0] * block[1], blocks = counts[0] * counts[1]
        let x = Tensor((0..<(channels * kernel * blocks)).map { Float($0 % 13) - 6 }, shape: [1, channels * kernel, blocks])
        let y = try Ops.one("Col2Im", opset: 18, [x, Ops.int64s(image), Ops.int64s(block)],
                            ["strides": .ints(strides), "dilations": .ints(dilations), "pads": .ints(pads)])
        var expected = [Float](repeating: 0, count: channels * image[0] * image[1])
        let values = x.scalars(as: Float.self)
        for c in 0..<channels {
            for kh in 0..<block[0] { for kw in 0..<block[1] { for bh in 0..<counts[0] { for bw in 0..<counts[1] {
                let h: Int = bh * strides[0] - pads[0] + kh * dilations[0]
                let w: Int = bw * strides[1] - pads[1] + kw * dilations[1]
                guard h >= 0, h < image[0], w >= 0, w < image[1] else { continue }
                let source: Int = (c * kernel + kh * block[1] + kw) * blocks + bh * counts[1] + bw
                expected[(c * image[0] + h) * image[1] + w] += values[source]
            } } } }
        }
        #expect(y.shape == [1, 2, 5, 7] && y.scalars(as: Float.self) == expected)
    }

    @Test func col2ImChecksTheGeometry() {
        let x = Ops.iota([1, 4, 9])
        let col2im = { (image: [Int], block: [Int]) in try Ops.one("Col2Im", opset: 18, [x, Ops.int64s(image), Ops.int64s(block)]) }
        #expect(Ops.error { try col2im([5, 5], [2, 2]) }?.isInvalidArgument("block positions") == true)
        #expect(Ops.error { try col2im([4, 4], [3, 3]) }?.isInvalidArgument("not a multiple") == true)
        #expect(Ops.error { try col2im([1, 1], [2, 2]) }?.isInvalidArgument("does not fit") == true)
        #expect(Ops.error { try col2im([4], [2, 2]) }?.isInvalidArgument("one size per spatial axis") == true)
        #expect(Ops.error { try col2im([4, 4], [1 << 62, 4]) }?.isInvalidArgument("too large") == true)
    }
}

@Suite struct GridSampleOperatorTests {
    private let image = Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [1, 1, 2, 3])

    private func grid(_ points: [Float]) -> Tensor { Tensor(points, shape: [1, 1, points.count / 2, 2]) }

    @Test func samplesCornersCentresAndOutside() throws {
        let corners = ["align_corners": AttributeValue.int(1)]
        // (x, y) = (-1, -1) is pixel (0, 0); (1, 1) pixel (1, 2); (0, 0) the centre between 2 and 5.
        let y = try Ops.one("GridSample", opset: 20, [image, grid([-1, -1, 1, 1, 0, 0])], corners)
        #expect(y.shape == [1, 1, 1, 3] && Ops.close(y.scalars(as: Float.self), [1, 6, 3.5]))
        // Far outside: zeros pads with 0, border with the edge, reflection folds back; a NaN point reads outside.
        let outside = grid([-9, 0, .nan, 0])
        #expect(try Ops.one("GridSample", opset: 20, [image, outside], corners).scalars(as: Float.self) == [0, 0])
        let border = try Ops.one("GridSample", opset: 20, [image, outside], ["align_corners": .int(1), "padding_mode": .string("border")])
        #expect(Ops.close(border.scalars(as: Float.self), [2.5, 2.5]))
        let nearest = try Ops.one("GridSample", opset: 16, [image, grid([0.1, -0.9])], ["mode": .string("nearest")])
        #expect(nearest.scalars(as: Float.self) == [2])
        let bytes = Tensor([10, 20, 30, 40, 50, 60] as [UInt8], shape: [1, 1, 2, 3])
        #expect(try Ops.one("GridSample", opset: 20, [bytes, grid([0, 0])], corners).scalars(as: UInt8.self) == [35])
    }

    @Test func refusesBadShapesAndModes() {
        #expect(Ops.error { try Ops.one("GridSample", opset: 20, [image, Tensor([0, 0, 0] as [Float], shape: [1, 1, 1, 3])]) }?
            .isInvalidArgument("grid [1, 1, 1, 3]") == true)
        #expect(Ops.error { try Ops.one("GridSample", opset: 20, [image, grid([0, 0])], ["mode": .string("bilinear")]) }?
            .isInvalidNode("mode 'bilinear'") == true)
        let deep = Tensor([Float](repeating: 0, count: 1), shape: [1, 1, 1, 1, 1, 1, 1, 1, 1])
        let deepGrid = Tensor([Float](repeating: 0, count: 7), shape: [1, 1, 1, 1, 1, 1, 1, 1, 7])
        #expect(Ops.error { try Ops.one("GridSample", opset: 20, [deep, deepGrid], ["mode": .string("cubic")]) }?
            .isInvalidArgument("more than 4096 taps") == true)
    }

    @Test func affineGridChecksThetaAgainstSize() throws {
        let identity = Tensor([1, 0, 0, 0, 1, 0] as [Float], shape: [1, 2, 3])
        let grid = try Ops.one("AffineGrid", opset: 20, [identity, Ops.int64s([1, 1, 2, 2])], ["align_corners": .int(1)])
        #expect(grid.shape == [1, 2, 2, 2] && grid.scalars(as: Float.self) == [-1, -1, 1, -1, -1, 1, 1, 1])
        #expect(Ops.error { try Ops.one("AffineGrid", opset: 20, [identity, Ops.int64s([1, 1, 2, 2, 2])]) }?.isInvalidArgument("theta must be [N, 3, 4]") == true)
        #expect(Ops.error { try Ops.one("AffineGrid", opset: 20, [identity, Ops.int64s([1, 1, 1 << 40, 1 << 40])]) }?.isInvalidArgument("too large") == true)
    }

    @Test func roiAlignRefusesHostileRegions() {
        let features = Ops.iota([1, 1, 4, 4])
        let roiAlign = { (rois: [Float], indices: [Int]) in
            try Ops.one("RoiAlign", opset: 16, [features, Tensor(rois, shape: [rois.count / 4, 4]), Ops.int64s(indices)])
        }
        #expect(Ops.error { try roiAlign([0, 0, 2, 2], [1]) }?.isInvalidArgument("batch_indices[0] = 1 is out of range for 1 images") == true)
        #expect(Ops.error { try roiAlign([0, 0, 1e30, 2], [0]) }?.isInvalidArgument("more than four times") == true)
        #expect(Ops.error { try roiAlign([0, .nan, 2, 2], [0]) }?.isInvalidArgument("not finite") == true)
        #expect(Ops.error { try roiAlign([0, 0, 2, 2, 1, 1, 3, 3], [0]) }?.isInvalidArgument("must be [R, 4] and [R]") == true)
    }
}
