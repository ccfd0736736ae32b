import ArgumentParser
import Foundation

/// Prints an error as one line on stderr and returns the exit code to throw.
func fail(_ error: any Error) -> ExitCode {
    let line = "\(error)".replacingOccurrences(of: "\n", with: " ")
    FileHandle.standardError.write(Data("onnx-serve: error: \(line)\n".utf8))
    return ExitCode(1)
}

/// Runs `body`, turning any error into a one-line message and exit code 1.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        throw fail(error)
    }
}
