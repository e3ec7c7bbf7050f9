import Foundation
import Qdrive
import Storage

/// The `qpic` section of `config.json` (Docs/media.md): privacy profiles besides (or replacing,
/// by name) the built-in `public`, `private` and `anonymous`; the profile an upload gets when it
/// names none (`QSTORE_QPIC_PROFILE`); the variants made at upload.
///
/// ```json
/// "qpic": {"defaultProfile": "public", "uploadVariants": ["thumb-256", "web-1280"],
///          "profiles": [{"name": "press", "stripAll": false, "strip": ["exif-ifd3-*"], "keepOriginal": true}]}
/// ```
public struct QpicConfiguration: ConfigurationSection {
    public static let key = "qpic"
    public var defaultProfile = "public"
    public var uploadVariants = ["thumb-256", "web-1280"]
    public var profiles: [PrivacyProfile] = []

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = QpicConfiguration()
        defaultProfile = try c.decodeIfPresent(String.self, forKey: .defaultProfile) ?? d.defaultProfile
        uploadVariants = try c.decodeIfPresent([String].self, forKey: .uploadVariants) ?? d.uploadVariants
        profiles = try c.decodeIfPresent([PrivacyProfile].self, forKey: .profiles) ?? d.profiles
    }

    public mutating func applyEnvironment(_ env: [String: String]) throws {
        if let v = env["QSTORE_QPIC_PROFILE"], !v.isEmpty { defaultProfile = v }
    }

    /// The profiles in force: the configured ones, then the built-in ones they do not replace.
    public var allProfiles: [PrivacyProfile] {
        profiles + PrivacyProfile.builtIn.filter { b in !profiles.contains { $0.name == b.name } }
    }

    /// The profile `name` (the default when nil); refuses an unknown one, naming those there are.
    public func profile(_ name: String?) throws -> PrivacyProfile {
        let wanted = name ?? defaultProfile
        guard let p = allProfiles.first(where: { $0.name == wanted }) else {
            throw DriveError.invalid("profile \(wanted.prefix(40)): one of \(allProfiles.map(\.name).joined(separator: ", "))")
        }
        return p
    }

    /// Refuses settings that cannot work, naming them.
    public func check() throws {
        for v in uploadVariants {
            guard (try? VariantName(v)) != nil, v != "public" else { throw RepositoryError.invalidConfiguration("qpic.uploadVariants: \(v) is not thumb-N or web-N") }
        }
        for p in profiles where p.name.isEmpty || p.name.count > 64 {
            throw RepositoryError.invalidConfiguration("qpic.profiles: a profile's name is 1 to 64 characters")
        }
        _ = try? profile(nil)
        guard allProfiles.contains(where: { $0.name == defaultProfile }) else {
            throw RepositoryError.invalidConfiguration("qpic.defaultProfile \(defaultProfile): not a profile (\(allProfiles.map(\.name).joined(separator: ", ")))")
        }
    }
}
