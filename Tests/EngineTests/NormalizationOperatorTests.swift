import Engine
import Foundation
import Tensors
import Testing
import TestSupport

@Suite struct NormalizationOperatorTests {
    /// (values - mean) / sqrt(variance + epsilon) for one group of values.
    private static func standardize(_ values: [Float], epsilon: Float = 1e-5) -> [Float] {
        let mean = values.reduce(0, +) / Float(values.count)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(values.count)
        return values.map { ($0 - mean) / (variance + epsilon).squareRoot() }
    }

    @Test func batchNormalizationPerChannel() throws {
        var generator = SeededGenerator(seed: 15)
        let x = Tensor(generator.floats(2 * 3 * 5), shape: [2, 3, 5])
        let scale: [Float] = [1, 2, 0.5], bias: [Float] = [0, 1, -1], mean: [Float] = [0.1, -0.2, 0], variance: [Float] = [1, 0.5, 2]
        let parameters = [scale, bias, mean, variance].map { Tensor($0, shape: [3]) }
        let expected = x.floats.enumerated().map { index, value in
            let c = index / 5 % 3
            return (value - mean[c]) / (variance[c] + 1e-5).squareRoot() * scale[c] + bias[c]
        }
        for opset in [6, 9, 15] {
            #expect(isClose(try runNode("BatchNormalization", [x] + parameters, opset: opset)[0].floats, expected), "opset \(opset)")
        }
        // Opset 7 with spatial = 0: statistics per channel and position.
        let perActivation = [Float](repeating: 1, count: 15)
        let flat = try runNode("BatchNormalization", [x] + [perActivation, perActivation, [Float](repeating: 0, count: 15), perActivation]
            .map { Tensor($0, shape: [3, 5]) }, attributes: ["spatial": .int(0)], opset: 7)[0]
        #expect(isClose(flat.floats, x.floats.map { $0 / (1 + 1e-5).squareRoot() + 1 }))
        // Training mode (14+): the batch's statistics normalise, the running ones come out updated.
        let training = try runNode("BatchNormalization", [x] + parameters, attributes: ["training_mode": .int(1), "momentum": .float(0.8)],
                                   opset: 15, outputs: 3)
        #expect(training.count == 3)
        let values = x.floats
        var trained = [Float](repeating: 0, count: values.count)
        var runningMean: [Float] = [], runningVariance: [Float] = []
        for c in 0..<3 {
            let positions = (0..<2).flatMap { n in (0..<5).map { (n * 3 + c) * 5 + $0 } }
            let group = positions.map { values[$0] }
            let batchMean = group.reduce(0, +) / Float(group.count)
            let batchVariance = group.reduce(0) { $0 + ($1 - batchMean) * ($1 - batchMean) } / Float(group.count)
            for (position, standard) in zip(positions, Self.standardize(group)) { trained[position] = standard * scale[c] + bias[c] }
            runningMean.append(mean[c] * 0.8 + batchMean * 0.2)
            runningVariance.append(variance[c] * 0.8 + batchVariance * 0.2)
        }
        #expect(isClose(training[0].floats, trained))
        #expect(isClose(training[1].floats, runningMean))
        #expect(isClose(training[2].floats, runningVariance))
        // Before opset 14, the statistics outputs meant training: refused.
        let oldTraining = failure { try runNode("BatchNormalization", [x] + parameters, opset: 9, outputs: 5) }
        #expect(oldTraining?.isInvalidNode("training mode") == true)
        #expect(failure { try runNode("BatchNormalization", [x, parameters[0], parameters[1], parameters[2], Tensor([1, 1] as [Float], shape: [2])]) }?
            .isInvalidArgument("var") == true)
    }

    @Test func layerNormalizationWithStatistics() throws {
        var generator = SeededGenerator(seed: 16)
        let x = Tensor(generator.floats(2 * 3 * 4, in: -2...2), shape: [2, 3, 4])
        let scale = Tensor(generator.floats(4), shape: [4]), bias = Tensor(generator.floats(12), shape: [3, 4])
        let outputs = try runNode("LayerNormalization", [x, scale, bias], attributes: ["axis": .int(1)], opset: 17, outputs: 3)
        #expect(outputs.count == 3 && outputs[1].shape == [2, 1, 1] && outputs[2].shape == [2, 1, 1])
        let values = x.floats, scales = scale.floats, biases = bias.floats
        var expected: [Float] = []
        for row in 0..<2 {
            let standardized = Self.standardize(Array(values[(row * 12)..<(row * 12 + 12)]))
            for j in 0..<12 { expected.append(standardized[j] * scales[j % 4] + biases[j]) }
        }
        #expect(isClose(outputs[0].floats, expected, relative: 1e-3, absolute: 1e-4))
        #expect(isClose(outputs[1].floats, [values[..<12].reduce(0, +) / 12, values[12...].reduce(0, +) / 12]))
        // Float16 computes in float and returns float16; its statistics are float.
        let half = try runNode("LayerNormalization", [Tensor(x.floats.map(Float16.init), shape: [2, 3, 4]),
                                                      Tensor(scale.floats.map(Float16.init), shape: [4])], opset: 17, outputs: 2)
        #expect(half[0].dataType == .float16 && half[1].dataType == .float)
        #expect(try inferTypes("LayerNormalization", [TensorType(.float, [.symbolic("n"), .fixed(3), .fixed(4)]), nil], opset: 17)
                == [TensorType(.float, [.symbolic("n"), .fixed(3), .fixed(4)]), TensorType(.float, [.symbolic("n"), .fixed(3), .fixed(1)]),
                    TensorType(.float, [.symbolic("n"), .fixed(3), .fixed(1)])])
    }

    @Test func instanceAndGroupNormalization() throws {
        var generator = SeededGenerator(seed: 17)
        let x = Tensor(generator.floats(2 * 4 * 3, in: -2...2), shape: [2, 4, 3])
        let values = x.floats
        let channelScale: [Float] = [1, 2, 3, 4], channelBias: [Float] = [0, -1, 1, 0.5]
        let instance = try runNode("InstanceNormalization", [x, Tensor(channelScale, shape: [4]), Tensor(channelBias, shape: [4])])[0]
        let expectedInstance = (0..<8).flatMap { row in
            Self.standardize(Array(values[(row * 3)..<(row * 3 + 3)])).map { $0 * channelScale[row % 4] + channelBias[row % 4] }
        }
        #expect(isClose(instance.floats, expectedInstance, relative: 1e-3, absolute: 1e-4))
        // Two groups of two channels; opset 21 scales per channel, opset 18 per group.
        let grouped = (0..<4).flatMap { group in Self.standardize(Array(values[(group * 6)..<(group * 6 + 6)])) }
        let perChannel = try runNode("GroupNormalization", [x, Tensor(channelScale, shape: [4]), Tensor(channelBias, shape: [4])],
                                     attributes: ["num_groups": .int(2)], opset: 21)[0]
        #expect(isClose(perChannel.floats, grouped.enumerated().map { index, value in
            value * channelScale[index / 3 % 4] + channelBias[index / 3 % 4]
        }, relative: 1e-3, absolute: 1e-4))
        let perGroup = try runNode("GroupNormalization", [x, Tensor([2, 3] as [Float], shape: [2]), Tensor([0, 1] as [Float], shape: [2])],
                                   attributes: ["num_groups": .int(2)], opset: 18)[0]
        #expect(isClose(perGroup.floats, grouped.enumerated().map { index, value in
            value * [2, 3][index / 6 % 2] + [0, 1][index / 6 % 2]
        }, relative: 1e-3, absolute: 1e-4))
        #expect(failure { try runNode("GroupNormalization", [x, Tensor([1, 1, 1] as [Float], shape: [3]), Tensor([0, 0, 0] as [Float], shape: [3])],
                                           attributes: ["num_groups": .int(3)], opset: 21) }?.isInvalidArgument("groups") == true)
    }

    @Test func meanVarianceAndLocalResponse() throws {
        var generator = SeededGenerator(seed: 18)
        let x = Tensor(generator.floats(2 * 3 * 2 * 2, in: -2...2), shape: [2, 3, 2, 2])
        let values = x.floats
        let normalized = try runNode("MeanVarianceNormalization", [x], opset: 13)[0].floats
        for c in 0..<3 {
            let indices = (0..<2).flatMap { n in (0..<4).map { n * 12 + c * 4 + $0 } }
            let group = indices.map { values[$0] }
            let mean = group.reduce(0, +) / 8
            let deviation = (group.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 8).squareRoot()
            #expect(isClose(indices.map { normalized[$0] }, group.map { ($0 - mean) / (deviation + 1e-9) }, relative: 1e-3, absolute: 1e-4))
        }
        let lrn = try runNode("LRN", [x], attributes: ["size": .int(3), "alpha": .float(0.1), "beta": .float(0.5), "bias": .float(2)])[0]
        let expected = values.indices.map { index -> Float in
            let n = index / 12, c = index / 4 % 3, position = index % 4
            let sum = (max(0, c - 1)...min(2, c + 1)).reduce(Float(0)) { $0 + pow(values[n * 12 + $1 * 4 + position], 2) }
            return values[index] / pow(2 + 0.1 / 3 * sum, 0.5)
        }
        #expect(isClose(lrn.floats, expected))
        #expect(failure { try runNode("LRN", [x]) }?.isInvalidNode("size") == true)
    }
}
