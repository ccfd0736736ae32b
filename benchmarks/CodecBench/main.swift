// Times the TF Serving JSON codec on a payload file: parse (to flat numbers), parse + convert
// to a float tensor, and writing a predict response. Prints one JSON object of medians (ms).
// Driven by benchmarks/json_codec.py, which times Python's json and orjson on the same bytes.
import API
import Foundation
import Serving
import Tensors

func median(_ runs: Int, _ body: () throws -> Void) rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<runs {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
    return times.sorted()[times.count / 2]
}

let arguments = CommandLine.arguments
guard arguments.count >= 3, let request = FileManager.default.contents(atPath: arguments[1]),
      let runs = Int(arguments[2]) else {
    FileHandle.standardError.write(Data("usage: codec-bench REQUEST.json RUNS [CLASSES]\n".utf8))
    exit(2)
}
let classes = arguments.count > 3 ? Int(arguments[3]) ?? 1000 : 1000
let bytes = [UInt8](request)

let parse = try median(runs) { _ = try JSONParser.parse(bytes) }
let parseToTensor = try median(runs) {
    guard case .object(let object) = try JSONParser.parse(bytes), let instances = object["instances"] else { exit(1) }
    _ = try JSONTensor.tensor(instances, dataType: .float, name: "input", layout: .nested) { Tensor(uninitialized: $0, shape: $1) }
}
var generator = SystemRandomNumberGenerator()
let probabilities = Tensor((0..<classes).map { _ in Float.random(in: 0..<1, using: &generator) }, shape: [1, classes])
let response = InferenceResponse(outputs: ["probabilities": probabilities], outputOrder: ["probabilities"],
                                 queueDuration: .zero, engineDuration: .zero, batchRows: 1)
var written = 0
let write = try median(runs * 10) { written = try TFServingCodec.encodePredict(response, format: .row).count }
print("{\"parse_ms\": \(parse), \"parse_to_tensor_ms\": \(parseToTensor), \"write_ms\": \(write), \"request_bytes\": \(bytes.count), \"response_bytes\": \(written)}")
