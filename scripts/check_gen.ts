/**
 * Fails when shared/gen is stale: regenerates the code from proto/ into a temporary folder
 * and compares it, file by file, with what is committed. `deno task gen` fixes it.
 */
const root = new URL("../", import.meta.url).pathname;
const tmp = await Deno.makeTempDir({ prefix: "goschedule-gen-" });
try {
  await run(["run", "-A", "npm:@bufbuild/buf@1.75.0", "generate", "--output", tmp]);
  await run(["fmt", "--quiet", "--config", `${root}deno.json`, `${tmp}/shared/gen`]);
  const committed = await listFiles(`${root}shared/gen`);
  const fresh = await listFiles(`${tmp}/shared/gen`);
  const problems: string[] = [];
  for (const file of new Set([...committed, ...fresh])) {
    const a = await Deno.readTextFile(`${root}shared/gen/${file}`).catch(() => undefined);
    const b = await Deno.readTextFile(`${tmp}/shared/gen/${file}`).catch(() => undefined);
    if (a === undefined) problems.push(`shared/gen/${file} is missing`);
    else if (b === undefined) problems.push(`shared/gen/${file} is no longer generated`);
    else if (a !== b) problems.push(`shared/gen/${file} differs from what proto/ generates`);
  }
  if (problems.length > 0) {
    console.error(`${problems.join("\n")}\nRun \`deno task gen\` and commit the result.`);
    Deno.exit(1);
  }
  console.log(`shared/gen is up to date (${committed.length} files)`);
} finally {
  await Deno.remove(tmp, { recursive: true });
}

async function run(args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), { args, cwd: root }).output();
  if (code !== 0) {
    console.error(new TextDecoder().decode(stderr));
    throw new Error(`deno ${args.join(" ")} exited ${code}`);
  }
}

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const name = `${prefix}${entry.name}`;
    if (entry.isDirectory) files.push(...await listFiles(`${dir}/${entry.name}`, `${name}/`));
    else files.push(name);
  }
  return files.sort();
}
