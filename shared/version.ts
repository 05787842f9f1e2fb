/** go-schedule's version, reported by workers and shown by `--version` flags. */
export const VERSION = "0.1.0";
