import CAR
import Foundation
import Storage

/// Opens the repository at `$QSTORE_PATH` (or `~/.qstore`) for a command, turning failures into user-facing errors.
func openRepository(purpose: String) throws -> Repository {
    let path = Repository.defaultPath()
    do { return try Repository(path: path, purpose: purpose) } catch { throw CLIError("\(error)") }
}

/// Runs `body`, reporting any error as a CLIError that names `what`.
func reporting<T>(_ what: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as CLIError { throw e } catch {
        endIfPipeClosed(error)
        throw CLIError("\(what): \(error)")
    }
}

/// A write to a closed pipe (`qstore cat … | head`) ends the process by SIGPIPE, quietly and with
/// the shell's status 141, as a plain write does when the CLI reads the repository itself; the
/// writes that report EPIPE instead are those of a process where NIO ignores the signal, and of
/// threads that block it.
func endIfPipeClosed(_ error: any Error) {
    guard let io = error as? CAR.IOError, io.code == EPIPE else { return }
    signal(SIGPIPE, SIG_DFL)
    raise(SIGPIPE)
}
