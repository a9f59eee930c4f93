import Foundation

/// Results written from concurrent workers, one slot each.
final class ConcurrentResults: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [String?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: String) {
        lock.lock(); slots[index] = value; lock.unlock()
    }

    var values: [String?] { lock.lock(); defer { lock.unlock() }; return slots }
}
