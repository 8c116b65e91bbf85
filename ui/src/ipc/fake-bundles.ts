// The fake backend's bundles: what an export writes and an import reads, kept in memory by file
// name. Shapes follow the Rust types (bindings/), words follow the core's messages.
import type { BundleManifest } from "./bindings/BundleManifest";
import type { BundleReport } from "./bindings/BundleReport";
import type { IpcError } from "./bindings/IpcError";
import type { MachineProvenance } from "./bindings/MachineProvenance";
import type { MachineSummary } from "./bindings/MachineSummary";

/** The demo catalog's endorser and list, as the fake's images carry them. */
export const FAKE_ENDORSER = "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo Endorser";
export const FAKE_LIST = "sloop-demo-list";
/** The user's own grid identity in the fake. */
export const FAKE_USER = "/DC=org/DC=example/CN=Jane Doe";

/** A bundle the fake wrote (or a test put there). */
export interface FakeBundle {
  manifest: BundleManifest;
  /** The signer's identity; null for an unsigned bundle. */
  signer: string | null;
}

export function bundleManifest(machine: MachineSummary, note: string): BundleManifest {
  return {
    format: "sloop-bundle",
    version: 1,
    machine: machine.name,
    base: {
      sha512: "ab".repeat(64),
      size: 28_000_000,
      title: machine.image,
      version: "1",
      identifier: "5f0c2a9e-demo",
      location: "file:///demo/sloop-demo.qcow2",
      list: {
        identifier: FAKE_LIST,
        url: "/demo/sloop-demo.image_list",
        endorserDn: FAKE_ENDORSER,
        endorserCa: "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo CA",
      },
    },
    overlay: {
      sha512: "cd".repeat(64),
      size: 3_400_000,
      virtualSize: 1 << 30,
      format: "qcow2",
      compression: "zstd",
    },
    resources: { vcpus: machine.vcpus, memoryMib: machine.memoryMib, diskGib: 1 },
    user: "sloop",
    workDirMount: "/analysis",
    createdAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    tool: "sloop 0.1.0",
    note,
  };
}

export function provenanceLine(manifest: BundleManifest, signer: string | null): string {
  const changed = signer
    ? `changed by ${signer}; signed at ${manifest.createdAt}`
    : `changed by an unknown person (not signed); made at ${manifest.createdAt}`;
  return `derived from image ${manifest.base.title} endorsed by ${manifest.base.list.endorserDn} in list ${manifest.base.list.identifier}; ${changed}`;
}

export function bundleReport(file: string, bundle: FakeBundle): BundleReport {
  const signed = bundle.signer !== null;
  return {
    file,
    bytes: bundle.manifest.overlay.size + 3072,
    manifest: structuredClone(bundle.manifest),
    signer: signed
      ? {
          identity: bundle.signer ?? "",
          subject: `${bundle.signer ?? ""}/CN=1234567`,
          issuer: bundle.signer ?? "",
          notBefore: bundle.manifest.createdAt,
          notAfter: bundle.manifest.createdAt,
        }
      : null,
    provenance: provenanceLine(bundle.manifest, bundle.signer),
    signature: signed
      ? { ok: true, detail: `signed by ${bundle.signer ?? ""}` }
      : { ok: false, detail: `bundle ${file} is not signed, so nobody vouches for it` },
    overlay: {
      ok: true,
      detail: "SHA-512 and size match; qcow2, zstd compressed, names only its base",
    },
    base: { ok: true, detail: `certified here by list ${FAKE_LIST}; in the image store` },
    verified: signed,
  };
}

/** A machine made on this computer. */
export function localProvenance(machine: MachineSummary): MachineProvenance {
  return {
    machine: machine.name,
    baseTitle: machine.image,
    baseSha512: "ab".repeat(64),
    endorserDn: FAKE_ENDORSER,
    listIdentifier: FAKE_LIST,
    bundle: null,
    changedBy: null,
    signedAt: null,
    note: null,
    summary: `derived from image ${machine.image} endorsed by ${FAKE_ENDORSER} in list ${FAKE_LIST}; made on this computer`,
  };
}

/** A machine imported from `file`. */
export function importedProvenance(
  name: string,
  file: string,
  bundle: FakeBundle,
): MachineProvenance {
  const base = file.split("/").pop() ?? file;
  return {
    machine: name,
    baseTitle: bundle.manifest.base.title,
    baseSha512: bundle.manifest.base.sha512,
    endorserDn: bundle.manifest.base.list.endorserDn,
    listIdentifier: bundle.manifest.base.list.identifier,
    bundle: base,
    changedBy: bundle.signer,
    signedAt: bundle.manifest.createdAt,
    note: bundle.manifest.note || null,
    summary: `${provenanceLine(bundle.manifest, bundle.signer)}; imported from ${base}`,
  };
}

export function bundleError(message: string): IpcError {
  return { code: "bundle", message };
}

export function consentError(message: string): IpcError {
  return { code: "bundleConsent", message };
}
