// Words for the host report's values, as the status panel shows them.

import type { Acceleration } from "../../ipc/bindings/Acceleration";
import type { CheckStatus } from "../../ipc/bindings/CheckStatus";
import type { ShareKind } from "../../ipc/bindings/ShareKind";

export function accelerationLabel(acceleration: Acceleration | null): string {
  switch (acceleration) {
    case "kvm":
      return "KVM (hardware virtualisation)";
    case "tcg":
      return "TCG (software emulation)";
    case null:
      return "None: QEMU cannot run a guest";
  }
}

export function shareLabel(share: ShareKind | null): string {
  switch (share) {
    case "virtiofs":
      return "virtiofs";
    case "9p":
      return "9p";
    case null:
      return "Not available";
  }
}

export function statusLabel(status: CheckStatus): string {
  switch (status) {
    case "ok":
      return "OK";
    case "warning":
      return "Warning";
    case "missing":
      return "Missing";
  }
}
