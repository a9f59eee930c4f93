import Exec
import Foundation
import Testing
import TestSupport

/// `make install` (scripts/install) into a DESTDIR: the tools, a man page per command generated from the command tree
/// (rendered by groff without a warning, no test-only option in them), and completions that complete.
@Suite("make install")
struct InstallTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test("tools, man pages and completions under DESTDIR/PREFIX", .requires(root: false, programs: ["groff", "bash"]))
    func installIntoDestdir() throws {
        let tools = URL(fileURLWithPath: try Products.path("aquarium-image")).deletingLastPathComponent().path
        let manual = tools + "/generate-manual"
        try #require(FileManager.default.isExecutableFile(atPath: manual),
                     "\(manual) is missing: `swift build --product generate-manual` (scripts/run-tests builds it)")
        try withTemporaryDirectory { destdir in
            let installed = try Command(Self.repository + "/scripts/install",
                                        ["--prefix", "/usr", "--destdir", destdir, "--tools", tools, "--manual", manual])
                .run(acceptedStatuses: Set(0...255))
            try #require(installed.status == 0, "\(installed.errorOutput)")
            let root = destdir + "/usr"
            for tool in ["aquarium-image", "aquarium-firstboot", "aquarium-provision"] {
                let version = try Command(root + "/bin/" + tool, ["--version"]).run(acceptedStatuses: Set(0...255))
                #expect(version.status == 0, "\(tool) not installed as a working program")
                #expect(FileManager.default.fileExists(atPath: root + "/share/zsh/site-functions/_" + tool))
                let fish = try String(contentsOfFile: root + "/share/fish/vendor_completions.d/\(tool).fish", encoding: .utf8)
                #expect(fish.contains("complete -c '\(tool)'"))
            }
            // A page for every command, named as man finds it (`man aquarium-image.flash`).
            let pages = Set(try FileManager.default.contentsOfDirectory(atPath: root + "/share/man/man1"))
            for page in ["aquarium-image.1", "aquarium-image.flash.1", "aquarium-image.seed.validate.1", "aquarium-firstboot.plan.1",
                         "aquarium-provision.bench.1", "aquarium-provision.maintenance.enter.1"] {
                #expect(pages.contains(page), "no \(page) in \(pages.sorted())")
            }
            #expect(pages.count >= 45 && !pages.contains { $0.contains(".help.") }, "\(pages.count) pages")
            for page in pages.sorted() {
                let path = root + "/share/man/man1/" + page
                let rendered = try Command("groff", ["-man", "-Tutf8", "-ww", "-z", path]).run(acceptedStatuses: Set(0...255))
                #expect(rendered.status == 0 && rendered.errorOutput.isEmpty, "\(page): \(rendered.errorOutput)")
                let text = try String(contentsOfFile: path, encoding: .utf8)
                #expect(!text.contains("fault-inject") && !text.contains("base-port"), "\(page) shows a test-only option")
            }
            let flash = try String(contentsOfFile: root + "/share/man/man1/aquarium-image.flash.1", encoding: .utf8)
            #expect(flash.contains("yes-non-removable"))
            // bash: `aquarium-image fl<TAB>` gives flash; `aquarium-image flash --<TAB>` its options.
            let completion = root + "/share/bash-completion/completions/aquarium-image"
            let script = """
                source "$1"
                COMP_WORDS=(aquarium-image fl); COMP_CWORD=1; COMP_LINE="aquarium-image fl"; COMP_POINT=${#COMP_LINE}
                _aquarium-image aquarium-image fl aquarium-image; echo "${COMPREPLY[*]}"
                COMP_WORDS=(aquarium-image flash --); COMP_CWORD=2; COMP_LINE="aquarium-image flash --"; COMP_POINT=${#COMP_LINE}
                _aquarium-image aquarium-image -- flash; echo "${COMPREPLY[*]}"
                """
            let completed = try Command("bash", ["-c", script, "bash", completion]).run(acceptedStatuses: Set(0...255))
            let lines = completed.output.split(separator: "\n").map(String.init)
            #expect(lines.first == "flash", "\(completed.output) \(completed.errorOutput)")
            #expect(lines.count == 2 && lines[1].contains("--yes-non-removable") && lines[1].contains("--bmap"), "\(lines)")
        }
    }
}
