/**
 * Reads V8 `.cpuprofile` files (from `deno run --cpu-prof`) and prints where the time went:
 * the functions with the most self time, and self time per source file. Used by `--profile`;
 * also runnable alone: `deno run -A bench/profile.ts FILE_OR_DIR [TOP]`.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  functions: { name: string; where: string; selfMs: number }[];
  files: { file: string; selfMs: number }[];
  /** Time with the component (a project file, or an npm package) anywhere on the stack. */
  components: { component: string; ms: number }[];
  /** Time with the project's function anywhere on the stack. */
  projectFunctions: { name: string; ms: number }[];
}

/**
 * Self time per function and file; with `window` (milliseconds from the profile's start),
 * only the samples taken in it.
 */
export function summarizeProfile(
  profile: CpuProfile,
  window?: { from: number; to: number },
): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let at = 0;
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    at += ms;
    if (window && (at < window.from || at > window.to)) return;
    self.set(id, (self.get(id) ?? 0) + ms);
  });
  const functions = new Map<string, { name: string; where: string; selfMs: number }>();
  const files = new Map<string, number>();
  let idleMs = 0;
  let totalMs = 0;
  for (const [id, ms] of self) {
    const frame = byId.get(id)!.callFrame;
    totalMs += ms;
    if (frame.functionName === "(idle)") {
      idleMs += ms;
      continue;
    }
    const file = shortUrl(frame.url);
    const where = `${file}:${frame.lineNumber + 1}`;
    const key = `${frame.functionName}@${where}`;
    const entry = functions.get(key) ??
      { name: frame.functionName || "(anonymous)", where, selfMs: 0 };
    entry.selfMs += ms;
    functions.set(key, entry);
    files.set(file, (files.get(file) ?? 0) + ms);
  }
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const components = new Map<string, number>();
  const projectFunctions = new Map<string, number>();
  for (const [id, ms] of self) {
    if (byId.get(id)!.callFrame.functionName === "(idle)") continue;
    const seenComponents = new Set<string>();
    const seenFunctions = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      const file = shortUrl(frame.url);
      const component = file.startsWith("npm:")
        ? file.split("/").slice(0, file.startsWith("npm:@") ? 2 : 1).join("/")
        : file;
      if (file !== "(native)") seenComponents.add(component);
      if (/^(manager|shared|worker)\//.test(file)) {
        seenFunctions.add(
          `${frame.functionName || "(anonymous)"}  ${file}:${frame.lineNumber + 1}`,
        );
      }
    }
    for (const c of seenComponents) components.set(c, (components.get(c) ?? 0) + ms);
    for (const f of seenFunctions) projectFunctions.set(f, (projectFunctions.get(f) ?? 0) + ms);
  }
  return {
    totalMs,
    idleMs,
    components: [...components].map(([component, ms]) => ({ component, ms })).sort((a, b) =>
      b.ms - a.ms
    ),
    projectFunctions: [...projectFunctions].map(([name, ms]) => ({ name, ms })).sort((a, b) =>
      b.ms - a.ms
    ),
    functions: [...functions.values()].sort((a, b) => b.selfMs - a.selfMs),
    files: [...files].map(([file, selfMs]) => ({ file, selfMs })).sort((a, b) =>
      b.selfMs - a.selfMs
    ),
  };
}

function shortUrl(url: string): string {
  if (url === "") return "(native)";
  const npm = /\/npm\/registry\.npmjs\.org\/([^/]+(?:\/[^/]+)?)\/[^/]+\/(.*)$/.exec(url);
  if (npm) return `npm:${npm[1]}/${npm[2]}`;
  // Any checkout (the profile may come from a copy of the repository elsewhere).
  const ours = /^file:\/\/.*?\/((?:manager|shared|worker|schedctl|bench|test)\/.+\.ts)$/.exec(
    url,
  );
  if (ours) return ours[1];
  return url.replace(/^.*\/ext:/, "ext:");
}

/**
 * Prints a summary of every `.cpuprofile` in `dir` (or the one file) to stderr: the whole
 * profile, then each phase (epoch ms; `origin` is when the profiled process was spawned, taken
 * as the profile's start).
 */
export async function summarizeProfiles(
  path: string,
  top = 25,
  slices: { origin: number; list: { name: string; from: number; to: number }[] } = {
    origin: 0,
    list: [],
  },
): Promise<void> {
  const files: string[] = [];
  const info = await Deno.stat(path);
  if (info.isFile) files.push(path);
  else {
    for await (const entry of Deno.readDir(path)) {
      if (entry.name.endsWith(".cpuprofile")) files.push(`${path}/${entry.name}`);
    }
  }
  for (const file of files.sort()) {
    const profile = JSON.parse(await Deno.readTextFile(file)) as CpuProfile;
    printSummary(file, summarizeProfile(profile), top);
    for (const phase of slices.list) {
      const window = { from: phase.from - slices.origin, to: phase.to - slices.origin };
      printSummary(`${file} [${phase.name}]`, summarizeProfile(profile, window), top);
    }
  }
}

function printSummary(title: string, s: ProfileSummary, top: number): void {
  {
    const busy = s.totalMs - s.idleMs;
    const pct = (ms: number) => `${((ms / busy) * 100).toFixed(1)}%`.padStart(6);
    const lines = [
      `profile ${title}: ${(s.totalMs / 1000).toFixed(1)} s sampled, ` +
      `${(busy / 1000).toFixed(1)} s busy (${((busy / s.totalMs) * 100).toFixed(0)}%)`,
      "  self time by function (share of busy time):",
      ...s.functions.slice(0, top).map((f) =>
        `  ${pct(f.selfMs)} ${f.selfMs.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`
      ),
      "  self time by file:",
      ...s.files.slice(0, 15).map((f) =>
        `  ${pct(f.selfMs)} ${f.selfMs.toFixed(0).padStart(7)} ms  ${f.file}`
      ),
      "  total time (on the stack) by npm package or file:",
      ...s.components.slice(0, 15).map((c) =>
        `  ${pct(c.ms)} ${c.ms.toFixed(0).padStart(7)} ms  ${c.component}`
      ),
      "  total time (on the stack) by function of ours:",
      ...s.projectFunctions.slice(0, 20).map((f) =>
        `  ${pct(f.ms)} ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}`
      ),
    ];
    console.error(lines.join("\n"));
  }
}

if (import.meta.main) {
  const usage = "usage: deno run -A bench/profile.ts FILE_OR_DIR [TOP]";
  const [path, topText = "25"] = Deno.args;
  const top = Number(topText);
  if (!path || path === "-h" || path === "--help") {
    console.error(usage);
    Deno.exit(path ? 0 : 2);
  }
  if (!Number.isInteger(top) || top < 1) {
    console.error(`profile: TOP must be a whole number of 1 or more, not "${topText}"\n${usage}`);
    Deno.exit(2);
  }
  try {
    await summarizeProfiles(path, top);
  } catch (e) {
    // A path that is not there, or a file that is not a profile: say which, without a trace.
    console.error(`profile: cannot read ${path}: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
