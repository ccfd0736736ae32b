import Engine
import Tensors
import Testing

private typealias Ops = TensorOpsHarness

@Suite struct ResizeOperatorTests {
    private let square = Tensor([1, 2, 3, 4] as [Float], shape: [1, 1, 2, 2])
    private let ramp = Ops.iota([1, 1, 4, 4])
    private let noRoi = Tensor([Float](), shape: [0])

    private func scales(_ values: [Float]) -> Tensor { Tensor(values, shape: [values.count]) }

    @Test func nearestUpsamplesEveryElementType() throws {
        let floor = ["mode": AttributeValue.string("nearest"), "coordinate_transformation_mode": .string("asymmetric"),
                     "nearest_mode": .string("floor")]
        let doubled = try Ops.one("Resize", opset: 13, [square, noRoi, scales([1, 1, 2, 2])], floor)
        #expect(doubled.shape == [1, 1, 4, 4] && doubled.scalars(as: Float.self) == [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
        let bytes = Tensor([1, 2, 3, 4] as [UInt8], shape: [1, 1, 2, 2])
        #expect(try Ops.one("Resize", opset: 13, [bytes, noRoi, scales([1, 1, 1, 2])], floor).scalars(as: UInt8.self) == [1, 1, 2, 2, 3, 3, 4, 4])
        #expect(try Ops.one("Upsample", opset: 7, [square], ["scales": .floats([1, 1, 1, 3])]).scalars(as: Float.self) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4])
        #expect(try Ops.one("Upsample", opset: 9, [square, scales([1, 1, 2, 1])]).scalars(as: Float.self) == [1, 2, 1, 2, 3, 4, 3, 4])
    }

    @Test func resize10RoundsDownsampledCoordinatesUp() throws {
        let result = try Ops.one("Resize", opset: 10, [ramp, scales([1, 1, 0.6, 1.5])])
        #expect(result.shape == [1, 1, 2, 6] && result.scalars(as: Float.self) == [0, 0, 1, 2, 2, 3, 8, 8, 9, 10, 10, 11])
    }

    @Test func linearAndCubicMatchOnnxRuntime() throws {
        let linear = try Ops.one("Resize", opset: 13, [square, noRoi, scales([1, 1, 2, 2])], ["mode": .string("linear")])
        #expect(Ops.close(linear.scalars(as: Float.self), [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4]))
        let cubic = try Ops.one("Resize", opset: 13, [ramp, noRoi, scales([1, 1, 0.75, 1.5])], ["mode": .string("cubic")])
        #expect(cubic.shape == [1, 1, 3, 6])
        #expect(Ops.close(cubic.scalars(as: Float.self), [0.417824, 0.910880, 1.717594, 2.291667, 3.098380, 3.591436, 5.913198, 6.40625, 7.212967,
                                         7.787039, 8.59375, 9.086805, 11.408571, 11.901623, 12.708341, 13.282412, 14.089123, 14.582180]))
        let halves = try Ops.one("Resize", opset: 13, [Tensor([1, 2, 3, 4] as [Float16], shape: [1, 1, 2, 2]), noRoi, scales([1, 1, 1, 2])],
                                 ["mode": .string("linear")])
        #expect(halves.scalars(as: Float16.self) == [1, 1.25, 1.75, 2, 3, 3.25, 3.75, 4])
    }

    @Test func alignCornersDownsamplingUsesTheIntegerOutputLength() throws {
        // ONNX Runtime's and PyTorch's values (interpolate(scale_factor=..., align_corners=True)):
        // output length floor(scale · input), x_original = x · (input − 1) / (output − 1). onnx.reference
        // divides by scale · input − 1 instead (2.4 − 1 here), which the node tests
        // test_resize_downsample_scales_{linear,cubic}_align_corners expect (ONNX Runtime fails them too).
        let corners = ["coordinate_transformation_mode": AttributeValue.string("align_corners")]
        var attributes = corners
        attributes["mode"] = .string("linear")
        let linear = try Ops.one("Resize", opset: 19, [Tensor((1...8).map(Float.init), shape: [1, 1, 2, 4]), noRoi, scales([1, 1, 0.6, 0.6])], attributes)
        #expect(linear.shape == [1, 1, 1, 2] && Ops.close(linear.scalars(as: Float.self), [1, 4]))
        attributes["mode"] = .string("cubic")
        let cubic = try Ops.one("Resize", opset: 19, [Tensor((1...16).map(Float.init), shape: [1, 1, 4, 4]), noRoi, scales([1, 1, 0.8, 0.8])], attributes)
        #expect(cubic.shape == [1, 1, 3, 3] && Ops.close(cubic.scalars(as: Float.self), [1, 2.5, 4, 7, 8.5, 10, 13, 14.5, 16]))
    }

    @Test func cropAndResizeExtrapolates() throws {
        let roi = Tensor([0, 0, 0.4, 0.6, 1, 1, 1.2, 0.7] as [Float], shape: [8])
        let result = try Ops.one("Resize", opset: 13, [ramp, roi, nil, Ops.int64s([1, 1, 3, 3])],
                                 ["mode": .string("linear"), "coordinate_transformation_mode": .string("tf_crop_and_resize"),
                                  "extrapolation_value": .float(10)])
        #expect(Ops.close(result.scalars(as: Float.self), [6.6, 6.75, 6.9, 11.4, 11.55, 11.7, 10, 10, 10]))
    }

    @Test func sizesWithAxesAntialiasAndAspectPolicy() throws {
        let antialiased = try Ops.one("Resize", opset: 18, [ramp, nil, nil, Ops.int64s([2, 2])],
                                      ["mode": .string("linear"), "antialias": .int(1), "axes": .ints([-2, -1])])
        #expect(Ops.close(antialiased.scalars(as: Float.self), [3.125, 4.875, 10.125, 11.875]))
        let policy = try Ops.one("Resize", opset: 18, [ramp, nil, nil, Ops.int64s([3, 1])],
                                 ["mode": .string("linear"), "antialias": .int(1), "axes": .ints([2, 3]),
                                  "keep_aspect_ratio_policy": .string("not_larger")])
        #expect(policy.shape == [1, 1, 1, 1])
    }

    @Test func badResizeRequestsThrow() {
        #expect(Ops.error { try Ops.one("Resize", opset: 13, [self.square, self.noRoi, self.scales([1, 1, 2, 2]), Ops.int64s([1, 1, 4, 4])]) }?
            .isInvalidArgument("not both") == true)
        #expect(Ops.error { try Ops.one("Resize", opset: 13, [self.square, self.noRoi, self.scales([1, 2])]) }?.isInvalidArgument("do not fit") == true)
        #expect(Ops.error { try Ops.one("Resize", opset: 13, [self.square, self.noRoi, self.scales([1, 1, -2, 2])]) }?.isInvalidArgument("do not fit") == true)
        #expect(Ops.error { try Ops.one("Resize", opset: 18, [self.square, nil, nil, Ops.int64s([2, 2])], ["antialias": .int(1)]) }?
            .isInvalidNode("antialias") == true)
        #expect(Ops.error { try Ops.one("Upsample", opset: 9, [self.square, self.scales([1, 1, 0.5, 1])]) }?.isInvalidArgument("below 1") == true)
        #expect(Ops.error { try Ops.one("Resize", opset: 13, [self.square, self.noRoi, self.scales([1, 1, 1e9, 1e9])]) }?.isInvalidArgument("too large") == true)
        #expect(Ops.error { try Ops.one("Resize", opset: 13, [self.square, self.noRoi], ["mode": .string("area")]) }?.isInvalidNode("unknown mode") == true)
    }
}
