import Foundation
import Storage

/// Opens the repository at `$QSTORE_PATH` (or `~/.qstore`) for a command, turning failures into user-facing errors.
func openRepository(purpose: String) throws -> Repository {
    let path = Repository.defaultPath()
    do { return try Repository(path: path, purpose: purpose) } catch { throw CLIError("\(error)") }
}

/// Runs `body`, reporting any error as a CLIError that names `what`.
func reporting<T>(_ what: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as CLIError { throw e } catch { throw CLIError("\(what): \(error)") }
}
