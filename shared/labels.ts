/**
 * Label keys and values, spelt as Kubernetes spells them, so that they survive being written
 * in YAML files, on command lines (`--label gpu=true`) and in tables without quoting:
 *
 * - a key is a name of 1 to 63 letters, digits, "-", "_" and ".", beginning and ending with a
 *   letter or digit, optionally after a prefix in DNS form and a "/" (`example.com/rack`);
 * - a value is empty, or up to 63 characters spelt as a name.
 *
 * Pure; each check returns what is wrong in words, or undefined.
 */

/** The longest name (the part of a key after the prefix) and the longest value. */
export const MAX_LABEL_NAME = 63;
/** The longest prefix of a key (a DNS subdomain). */
export const MAX_LABEL_PREFIX = 253;

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/;

const NAME_RULE = `1 to ${MAX_LABEL_NAME} letters, digits, "-", "_" or ".", ` +
  "beginning and ending with a letter or digit";

function show(text: string): string {
  return JSON.stringify(text);
}

/** What is wrong with a label key, or undefined when it is a valid one. */
export function labelKeyProblem(key: string): string | undefined {
  if (key === "") return "a label key is empty";
  const slash = key.indexOf("/");
  if (slash !== -1) {
    const prefix = key.slice(0, slash);
    if (prefix.length > MAX_LABEL_PREFIX || !DNS_SUBDOMAIN.test(prefix)) {
      return `the label key ${show(key)} has a bad prefix ${show(prefix)}: before "/" use a ` +
        "lowercase DNS name, e.g. example.com/rack";
    }
  }
  const name = key.slice(slash + 1);
  if (name.length > MAX_LABEL_NAME || !NAME.test(name)) {
    return `the label key ${show(key)} is not valid: use ${NAME_RULE} ` +
      `(optionally after a DNS prefix and "/", e.g. example.com/rack)`;
  }
  return undefined;
}

/** What is wrong with the value of label `key`, or undefined when it is a valid one. */
export function labelValueProblem(key: string, value: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > MAX_LABEL_NAME || !NAME.test(value)) {
    return `the value ${show(value)} of label ${key} is not valid: use ${NAME_RULE}, or nothing`;
  }
  return undefined;
}
