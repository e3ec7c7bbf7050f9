import Foundation
import FuzzTargets
#if canImport(Glibc)
import Glibc
#endif

// Built with `-sanitize=fuzzer,address -parse-as-library -D FUZZING` (Scripts/fuzz.sh), this is
// a libFuzzer binary: libFuzzer's own main runs the target QSTORE_FUZZ_TARGET names. Built
// normally, it replays files through a target: `qstore-fuzz TARGET FILE…`, `qstore-fuzz --list`.

/// Writes `text` to standard error.
func complain(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

#if FUZZING
nonisolated(unsafe) var selected: FuzzTargets.Target?

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// One input, to the selected target.
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    selected!.run(bytes)
    return 0
}

/// The entry point (SwiftPM links an executable's `main` to `<module>_main`): picks the target,
/// then hands over to libFuzzer's driver.
@_cdecl("qstore_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    let name = getenv("QSTORE_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let t = FuzzTargets.target(name) else {
        complain("QSTORE_FUZZ_TARGET must name one of: \(FuzzTargets.all.map(\.name).joined(separator: " "))\n")
        return 2
    }
    selected = t
    var count = argc
    var vector = argv
    return runDriver(&count, &vector) { data, size in testOneInput(data, size) }
}
#else
@main
struct Replay {
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        if args.first == "--list" || args.isEmpty {
            for t in FuzzTargets.all { print("\(t.name)\t\(t.input)") }
            if args.isEmpty { complain("usage: qstore-fuzz TARGET FILE… (replays each file through the target); qstore-fuzz --write-seeds DIR\n") }
            return
        }
        if args.first == "--write-seeds", args.count == 2 {
            do {
                for (target, name, bytes) in try FuzzTargets.generatedSeeds() {
                    let dir = args[1] + "/" + target
                    mkdir(dir, 0o755)
                    guard let f = fopen(dir + "/generated-" + name, "wb") else { throw CocoaError(.fileWriteUnknown) }
                    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
                    fclose(f)
                }
            } catch {
                complain("cannot write the seeds: \(error)\n")
                exit(1)
            }
            return
        }
        guard let t = FuzzTargets.target(args[0]) else {
            complain("no fuzz target \(args[0]) (qstore-fuzz --list)\n")
            exit(2)
        }
        for path in args.dropFirst() {
            guard let f = fopen(path, "rb") else {
                complain("cannot read \(path)\n")
                exit(1)
            }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&buffer, 1, buffer.count, f)
                if n <= 0 { break }
                bytes += buffer[0..<n]
            }
            fclose(f)
            t.run(bytes)
            print("\(path): ok")
        }
    }
}
#endif
