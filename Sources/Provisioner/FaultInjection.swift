import Foundation
// Re-exported: the shared types in the Provisioner's API (ProvisionOptions.fault) come with it.
@_exported import NodeContract

// The fault point type is NodeContract's `FaultPoint`, shared with FirstBoot. Here a bare `STEP` means `STEP:after`;
// `mid` points sit where a step has an interesting middle: keys, mon-mkfs, osds, rgw, replication.

extension Provisioner {
    /// Dies at `step`'s `mid` point when it is the fault point (the runner has the `before` and `after` points).
    func fault(_ step: String, _ when: FaultPoint.When) {
        options.fault?.trigger(step, when) {
            logger.notice("fault injection: dying at \(options.fault!)")
            events.append(ProvisionEvent(event: "fault.injected", step: step, detail: options.fault!.description))
        }
    }
}
