// What another view asks the Grid view to show when it switches there.

import type { RunView } from "../../ipc/bindings/RunView";

export type GridFocus =
  /** A run just submitted: the runs, with it highlighted. */
  | { tab: "runs"; run: RunView }
  /** The sites, with the cursor in the add form. */
  | { tab: "sites"; add: true };
