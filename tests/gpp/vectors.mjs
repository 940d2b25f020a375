// Writes vectors.json: GPP strings encoded by @iabgpp/cmpapi (the version pinned in
// package-lock.json), each with the values the same library reads back when a fresh
// GppModel decodes the string.
//
//   node vectors.mjs            write vectors.json beside this file
//   node vectors.mjs --stdout   print it instead
//   node vectors.mjs --check    exit 1 if vectors.json differs from what would be written
//
// Deterministic: no current dates (every TCF vector sets Created/LastUpdated to fixed dates,
// after its other fields, because the library stamps "now" on every other set), and the
// pseudo-random values come from a PRNG seeded by the vector's name.

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  GppModel,
  HeaderV1,
  RangeEntry,
  Sections,
  UspV1,
} from "@iabgpp/cmpapi";

const here = dirname(fileURLToPath(import.meta.url));
const LIB = "@iabgpp/cmpapi";
const LIB_VERSION = JSON.parse(
  readFileSync(join(here, "node_modules", "@iabgpp", "cmpapi", "package.json"), "utf8"),
).version;
if (LIB_VERSION !== "3.2.0") throw new Error(`expected ${LIB} 3.2.0, found ${LIB_VERSION}`);

// ---------------------------------------------------------------- helpers

function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

// mulberry32
function prng(name) {
  let a = fnv1a(name);
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)); // inclusive
  const pick = (xs) => xs[Math.floor(next() * xs.length)];
  const bool = () => next() < 0.5;
  return { next, int, pick, bool };
}

// The library's field objects for a section, by segment, in declaration order.
function sectionLayout(name) {
  const model = new GppModel();
  model.decodeSection(name, ""); // creates an empty section of that kind
  const section = model.sections.get(name);
  return section.segments.map((seg) => {
    const encoded = [...seg.getFieldNames()];
    const all = [...seg.fields.getAll().keys()];
    return {
      segment: seg.constructor.name,
      encoded,
      flags: all.filter((n) => !encoded.includes(n)),
      field: (n) => seg.fields.get(n),
    };
  });
}

// Values the library will accept for a 2-bit field (it validates on set, not on decode).
function allowedSmallInts(field) {
  const max = (1 << field.bitStringLength) - 1;
  const out = [];
  for (let v = 0; v <= max; v++) {
    if (!field.validator || field.validator.test(v)) out.push(v);
  }
  return out;
}

function allowedListInts(field) {
  const max = (1 << field.elementBitStringLength) - 1;
  const out = [];
  for (let v = 0; v <= max; v++) {
    if (!field.validator || field.validator.test([v])) out.push(v);
  }
  return out;
}

function toPlain(v) {
  if (Object.prototype.toString.call(v) === "[object Date]") return v.toISOString();
  if (v instanceof RangeEntry) return { key: v.getKey(), type: v.getType(), ids: toPlain(v.getIds()) };
  if (Array.isArray(v)) return v.map(toPlain);
  return v;
}

// Every field of a section as a fresh model reads it back: per segment, the encoded fields in
// encoding order, then that segment's flags that are not encoded (GpcSegmentIncluded,
// SensitiveDataConsentSegmentIncluded).
function readBack(model, name) {
  if (!model.hasSection(name)) throw new Error(`${name} not decoded`); // also runs the lazy decode
  const section = model.sections.get(name);
  const out = {};
  for (const seg of section.segments) {
    const encoded = [...seg.getFieldNames()];
    const all = [...seg.fields.getAll().keys()];
    for (const n of [...encoded, ...all.filter((k) => !encoded.includes(k))]) {
      out[n] = toPlain(model.getFieldValue(name, n));
    }
  }
  return out;
}

function sameJson(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// ---------------------------------------------------------------- building one vector

// plan: [{ section, set: [[field, value], ...], raw?: (model, setRecord) => void }]
function build(name, plan, note) {
  const model = new GppModel();
  const setRecord = {};
  for (const step of plan) {
    const rec = (setRecord[step.section] ??= {});
    for (const [field, value] of step.set) {
      // The library may mutate arrays it is given (PurposeLegitimateInterests): record first.
      rec[field] = toPlain(structuredClone(value));
      model.setFieldValue(step.section, field, value);
    }
    if (step.raw) step.raw(model, rec);
  }
  const gpp = model.encode();
  const ids = model.getSectionIds();
  const names = ids.map((id) => Sections.SECTION_ID_NAME_MAP.get(id));
  const sectionStrings = {};
  for (const n of names) sectionStrings[n] = model.encodeSection(n);

  // Decode with a fresh model.
  const fresh = new GppModel(gpp);
  const headerString = gpp.split("~")[0];
  const headerFields = new HeaderV1(headerString).toObj();
  const fields = {};
  for (const n of names) fields[n] = readBack(fresh, n);

  // Self-checks.
  const parts = [headerString, ...names.map((n) => sectionStrings[n])];
  if (parts.join("~") !== gpp) throw new Error(`${name}: gpp is not header~sections`);
  if (!sameJson(headerFields.SectionIds, ids)) throw new Error(`${name}: header ids`);
  if (!sameJson(fresh.getSectionIds(), ids)) throw new Error(`${name}: decoded ids`);
  for (const n of names) {
    const alone = new GppModel();
    alone.decodeSection(n, sectionStrings[n]);
    if (!sameJson(readBack(alone, n), fields[n])) throw new Error(`${name}: ${n} alone differs`);
    const obj = toPlain(Object.values(fresh.getSection(n)));
    const mine = Object.entries(fields[n]).filter(([k]) => k in fresh.getSection(n)).map(([, v]) => v);
    if (!sameJson(obj, mine)) throw new Error(`${name}: ${n} toObj differs`);
  }

  const v = { name };
  if (note) v.note = note;
  if (names.length === 1) {
    v.section = names[0];
    v.sectionId = ids[0];
  } else {
    v.section = names;
    v.sectionIds = ids;
  }
  v.gpp = gpp;
  v.header = { encoded: headerString, fields: headerFields };
  if (names.length === 1) {
    v.sectionString = sectionStrings[names[0]];
    v.set = setRecord[names[0]];
    v.fields = fields[names[0]];
  } else {
    v.sectionStrings = sectionStrings;
    v.set = Object.fromEntries(names.map((n) => [n, setRecord[n] ?? {}]));
    v.fields = fields;
  }
  return v;
}

// ---------------------------------------------------------------- US sections

const VERSION_FIELDS = new Set(["Version", "MspaVersion"]);
const OPT_OUTS = ["SaleOptOut", "SharingOptOut", "TargetedAdvertisingOptOut"];
const LATIN = [
  [0, 1, 2],
  [1, 2, 0],
  [2, 0, 1],
];

function usInfo(name) {
  const layout = sectionLayout(name);
  const core = layout[0];
  const opt = layout[1]; // GPC segment or sensitive-data-consent segment, if any
  const flag = opt ? opt.flags[0] : null; // GpcSegmentIncluded / SensitiveDataConsentSegmentIncluded
  const hasGpc = !!opt && opt.encoded.includes("Gpc");
  const fields = []; // [name, fieldObject] for every settable, non-version field
  for (const seg of layout) for (const n of seg.encoded) if (!VERSION_FIELDS.has(n)) fields.push([n, seg.field(n)]);
  return { layout, core, opt, flag, hasGpc, fields, versionField: core.encoded[0] };
}

function randomValue(r, n, f, { nonDefault }) {
  const kind = f.constructor.name;
  if (kind === "EncodableFixedInteger") {
    let vals = allowedSmallInts(f);
    if (nonDefault) vals = vals.filter((v) => v !== f.getValue());
    return r.pick(vals);
  }
  if (kind === "EncodableFixedIntegerList") {
    const vals = allowedListInts(f);
    const out = [];
    for (let i = 0; i < f.numElements; i++) out.push(r.pick(vals));
    if (nonDefault && sameJson(out, f.getValue())) out[0] = vals[vals.length - 1];
    return out;
  }
  if (kind === "EncodableBoolean") return nonDefault ? !f.getValue() : r.bool();
  throw new Error(`no random value for ${n} (${kind})`);
}

function maxValue(f) {
  const kind = f.constructor.name;
  if (kind === "EncodableFixedInteger") return Math.max(...allowedSmallInts(f));
  if (kind === "EncodableFixedIntegerList") return new Array(f.numElements).fill(Math.max(...allowedListInts(f)));
  if (kind === "EncodableBoolean") return true;
  throw new Error(kind);
}

function usVectors(name, C) {
  const info = usInfo(name);
  const out = [];
  const optOuts = OPT_OUTS.filter((n) => info.fields.some(([k]) => k === n));
  const gpcSet = (mode) => {
    // mode: "default" | "on" | "off" | "off-but-set"
    if (!info.opt) return [];
    if (info.hasGpc) {
      if (mode === "default") return [];
      if (mode === "on") return [["Gpc", true]];
      if (mode === "off") return [[info.flag, false]];
      if (mode === "off-but-set") return [[info.flag, false], ["Gpc", true]];
    } else {
      if (mode === "default" || mode === "on") return [];
      if (mode === "off") return [[info.flag, false]];
      if (mode === "off-but-set") return [[info.flag, false], ["SensitiveDataProcessing", [1, 2, 1, 2, 1, 2, 1, 2]]];
    }
    return [];
  };

  // 1. defaults: set the version field to the value it already has, to create the section.
  out.push(build(`${name}/defaults`, [{ section: name, set: [[info.versionField, C.VERSION]] }]));

  // 2. opt-outs in Latin-square combinations, then all 1 (opted out) and all 2 (did not).
  const combos = [...LATIN.map((row) => row.slice(0, optOuts.length)), optOuts.map(() => 1), optOuts.map(() => 2)];
  const gpcModes = ["default", "on", "off", "on", "off-but-set"];
  combos.forEach((combo, i) => {
    const label = i < 3 ? `opt-outs-${combo.join("")}` : `opt-outs-all-${combo[0]}`;
    const set = optOuts.map((n, j) => [n, combo[j]]);
    set.push(...gpcSet(gpcModes[i]));
    out.push(build(`${name}/${label}`, [{ section: name, set }]));
  });

  // 3. every field non-default, pseudo-random; the optional segment present / absent.
  for (const [k, mode] of [
    [1, "present"],
    [2, "absent"],
    [3, "present-any"],
  ]) {
    const vname = `${name}/random-${k}`;
    const r = prng(vname);
    const set = [];
    for (const [n, f] of info.fields) {
      if (info.opt && info.hasGpc && (n === "GpcSegmentType" || n === "Gpc")) continue;
      set.push([n, randomValue(r, n, f, { nonDefault: true })]);
    }
    if (info.opt && info.hasGpc) {
      const typeField = info.opt.field("GpcSegmentType");
      if (mode === "present-any") {
        set.push(["GpcSegmentType", r.pick(allowedSmallInts(typeField))], ["Gpc", r.bool()]);
      } else {
        set.push(["GpcSegmentType", r.pick(allowedSmallInts(typeField).filter((v) => v !== 1))], ["Gpc", true]);
      }
    }
    if (info.opt && mode === "absent") set.push([info.flag, false]);
    out.push(build(vname, [{ section: name, set }]));
  }

  // 4. every field at the largest value the library accepts.
  {
    const set = info.fields.map(([n, f]) => [n, maxValue(f)]);
    out.push(build(`${name}/max`, [{ section: name, set }]));
  }
  return out;
}

// ---------------------------------------------------------------- uspv1

function uspVectors() {
  const combos = [
    ["Y", "N", "-"],
    ["N", "Y", "Y"],
    ["-", "N", "N"],
    ["Y", "Y", "N"],
    ["N", "-", "Y"],
    ["Y", "N", "Y"],
  ];
  const out = [build("uspv1/defaults", [{ section: "uspv1", set: [["Version", UspV1.VERSION]] }])];
  for (const [a, b, c] of combos) {
    out.push(
      build(`uspv1/${a}${b}${c}`, [
        { section: "uspv1", set: [["Notice", a], ["OptOutSale", b], ["LspaCovered", c]] },
      ]),
    );
  }
  return out;
}

// ---------------------------------------------------------------- TCF

const RECENT = "2026-11-20T09:15:00.000Z"; // 10 days before 2026-11-30
const OLD = "2025-09-01T12:34:56.700Z"; // about 15 months before 2026-11-30
const OLDER = "2024-03-15T00:00:00.000Z";
const d = (iso) => new Date(iso);

function bits(r, n, p = 0.5) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(r.next() < p);
  return out;
}

function ids(r, count, max) {
  const s = new Set();
  while (s.size < count) s.add(r.int(1, max));
  return [...s].sort((a, b) => a - b);
}

function letters(r) {
  const A = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  return r.pick([...A]) + r.pick([...A]);
}

function tcfEuVectors() {
  const S = "tcfeuv2";
  const out = [];
  const dates = (iso) => [["Created", d(iso)]]; // Created also sets LastUpdated to the same value

  out.push(build(`${S}/defaults`, [{ section: S, set: dates(RECENT) }]));

  out.push(
    build(`${S}/old-consent`, [
      {
        section: S,
        set: [
          ["CmpId", 31],
          ["CmpVersion", 2],
          ["VendorListVersion", 120],
          ["PurposeConsents", [true, true, true, false, false, false, true, false, false, false, true]],
          ["VendorConsents", [2, 6, 8, 755]],
          ...dates(OLD),
        ],
      },
    ]),
  );

  out.push(
    build(`${S}/purposes-and-vendors`, [
      {
        section: S,
        set: [
          ["CmpId", 300],
          ["CmpVersion", 7],
          ["ConsentScreen", 3],
          ["ConsentLanguage", "FR"],
          ["VendorListVersion", 3021],
          ["PolicyVersion", 4],
          ["PurposeConsents", [true, false, true, true, false, true, true, true, true, true]],
          // the library forces purposes 1 and 3-6 to false here
          ["PurposeLegitimateInterests", [true, true, true, true, true, true, true, true, true, true]],
          // long runs: range encoding is shorter than a bitfield
          ["VendorConsents", [...Array.from({ length: 60 }, (_, i) => 1 + i), 500, 501, 502, 1200]],
          // dense small ids: bitfield encoding
          ["VendorLegitimateInterests", [1, 3, 4, 7, 9, 10, 11, 15]],
          ["PublisherCountryCode", "DE"],
          ...dates(RECENT),
        ],
      },
    ]),
  );

  for (const k of [1, 2]) {
    const vname = `${S}/random-${k}`;
    const r = prng(vname);
    const numCustom = r.int(1, 8);
    out.push(
      build(vname, [
        {
          section: S,
          set: [
            ["CmpId", r.int(2, 4095)],
            ["CmpVersion", r.int(1, 4095)],
            ["ConsentScreen", r.int(1, 63)],
            ["ConsentLanguage", letters(r)],
            ["VendorListVersion", r.int(1, 4095)],
            ["PolicyVersion", r.int(2, 5)],
            ["UseNonStandardStacks", true],
            ["SpecialFeatureOptins", bits(r, 12)],
            ["PurposeConsents", bits(r, 24)],
            ["PurposeLegitimateInterests", bits(r, 24)],
            ["PurposeOneTreatment", true],
            ["PublisherCountryCode", letters(r)],
            ["VendorConsents", ids(r, r.int(5, 40), k === 1 ? 120 : 3000)],
            ["VendorLegitimateInterests", ids(r, r.int(3, 20), k === 1 ? 3000 : 90)],
            [
              "PublisherRestrictions",
              [
                new RangeEntry(r.int(1, 11), r.int(0, 2), ids(r, 3, 50)),
                new RangeEntry(r.int(1, 11), r.int(0, 3), [10, 11, 12, 13, 40]),
              ],
            ],
            ["PublisherConsents", bits(r, 24)],
            ["PublisherLegitimateInterests", bits(r, 24)],
            ["NumCustomPurposes", numCustom],
            ["PublisherCustomConsents", bits(r, numCustom)],
            ["PublisherCustomLegitimateInterests", bits(r, numCustom)],
            ["VendorsDisclosed", ids(r, r.int(5, 30), 1000)],
            // never encoded by this library: reads back as the default
            ["VendorsAllowed", [1, 2, 3]],
            ...dates(k === 1 ? RECENT : OLD),
          ],
        },
      ]),
    );
  }

  // Created and LastUpdated differ: the library's section setter keeps them equal, so the
  // second date is written on the core segment itself.
  out.push(
    build(
      `${S}/created-before-last-updated`,
      [
        {
          section: S,
          set: [["CmpId", 12], ["PurposeConsents", [true]], ["VendorConsents", [10]], ["Created", d(OLDER)]],
          raw: (model, rec) => {
            const core = model.sections.get(S).segments[0];
            core.setFieldValue("LastUpdated", d(RECENT));
            model.sections.get(S).setIsDirty(true);
            rec.LastUpdated = RECENT;
          },
        },
      ],
      "LastUpdated set on the core segment directly (TcfEuV2.setFieldValue keeps Created == LastUpdated)",
    ),
  );

  // Dates are stored in deciseconds: .456 s is encoded as 5 and reads back as .500.
  out.push(
    build(`${S}/date-rounding`, [
      { section: S, set: [["PurposeConsents", [true, true]], ["Created", d("2026-06-30T23:59:59.456Z")]] },
    ]),
  );
  return out;
}

function tcfCaVectors() {
  const S = "tcfcav1";
  const out = [];
  // TcfCaV1.setFieldValue stamps both dates with "now" unless the field is a date: set them last.
  const dates = (c, u) => [["Created", d(c)], ["LastUpdated", d(u)]];
  out.push(build(`${S}/defaults`, [{ section: S, set: dates(RECENT, RECENT) }]));
  out.push(
    build(`${S}/express-consent`, [
      {
        section: S,
        set: [
          ["CmpId", 50],
          ["CmpVersion", 3],
          ["PurposesExpressConsent", [true, true, false, true]],
          ["VendorExpressConsent", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 400]],
          ...dates(OLD, RECENT),
        ],
      },
    ]),
  );
  for (const k of [1, 2, 3]) {
    const vname = `${S}/random-${k}`;
    const r = prng(vname);
    const numCustom = r.int(1, 6);
    const set = [
      ["CmpId", r.int(2, 4095)],
      ["CmpVersion", r.int(1, 4095)],
      ["ConsentScreen", r.int(1, 63)],
      ["ConsentLanguage", letters(r)],
      ["VendorListVersion", r.int(1, 4095)],
      ["TcfPolicyVersion", r.int(1, 63)],
      ["UseNonStandardStacks", true],
      ["SpecialFeatureExpressConsent", bits(r, 12)],
      ["PurposesExpressConsent", bits(r, 24)],
      ["PurposesImpliedConsent", bits(r, 24)],
      ["VendorExpressConsent", ids(r, r.int(3, 30), k === 2 ? 60 : 2000)],
      ["VendorImpliedConsent", ids(r, r.int(3, 30), k === 2 ? 2000 : 60)],
      ["PubRestrictions", [new RangeEntry(r.int(1, 11), r.int(0, 2), ids(r, 4, 80))]],
      ["PubPurposesExpressConsent", bits(r, 24)],
      ["PubPurposesImpliedConsent", bits(r, 24)],
      ["NumCustomPurposes", numCustom],
      ["CustomPurposesExpressConsent", bits(r, numCustom)],
      ["CustomPurposesImpliedConsent", bits(r, numCustom)],
    ];
    if (k !== 3) set.push(["DisclosedVendors", ids(r, r.int(3, 25), 900)]);
    set.push(...dates(k === 1 ? OLD : RECENT, RECENT));
    out.push(build(vname, [{ section: S, set }]));
  }
  out.push(
    build(`${S}/date-rounding`, [
      { section: S, set: [["PurposesExpressConsent", [true]], ...dates("2026-01-01T00:00:00.049Z", "2026-02-02T02:02:02.951Z")] },
    ]),
  );
  return out;
}

// ---------------------------------------------------------------- several sections in one string

function multiVectors() {
  const out = [];
  const tcf = (iso) => ({
    section: "tcfeuv2",
    set: [
      ["CmpId", 7],
      ["PurposeConsents", [true, true, true]],
      ["VendorConsents", [1, 2, 32]],
      ["Created", d(iso)],
    ],
  });
  const usnat = {
    section: "usnat",
    set: [
      ["SharingNotice", 1],
      ["SaleOptOutNotice", 1],
      ["SaleOptOut", 2],
      ["SharingOptOut", 1],
      ["TargetedAdvertisingOptOut", 1],
      ["MspaCoveredTransaction", 2],
      ["Gpc", true],
    ],
  };
  const usca = { section: "usca", set: [["SaleOptOut", 1], ["SharingOptOut", 2], ["GpcSegmentIncluded", false]] };
  const uspv1 = { section: "uspv1", set: [["Notice", "Y"], ["OptOutSale", "N"], ["LspaCovered", "Y"]] };

  out.push(build("multi/tcfeuv2+usnat", [tcf(RECENT), usnat]));
  out.push(build("multi/usnat+usca", [usnat, usca]));
  out.push(build("multi/uspv1+usnat", [uspv1, usnat]));
  // set in reverse id order: the library writes sections in id order
  out.push(build("multi/usca+uspv1+tcfeuv2 (set in that order)", [usca, uspv1, tcf(OLD)]));
  // ids 7, 9, 11, 13: no two adjacent, every header entry a single id
  out.push(
    build("multi/usnat+usva+usut+usfl", [
      usnat,
      { section: "usva", set: [["SaleOptOut", 2]] },
      { section: "usut", set: [["TargetedAdvertisingOptOut", 1]] },
      { section: "usfl", set: [["SaleOptOut", 1]] },
    ]),
  );
  // every section the library has: header ids 2, 5, 6 and the run 7..27
  {
    const plan = [];
    for (const [, name] of [...Sections.SECTION_ID_NAME_MAP].sort((a, b) => a[0] - b[0])) {
      if (name === "tcfeuv2") plan.push(tcf(RECENT));
      else if (name === "tcfcav1") plan.push({ section: name, set: [["CmpId", 9], ["Created", d(RECENT)], ["LastUpdated", d(RECENT)]] });
      else if (name === "uspv1") plan.push(uspv1);
      else {
        const r = prng(`multi/all/${name}`);
        const have = usInfo(name).fields.map(([k]) => k);
        plan.push({ section: name, set: OPT_OUTS.filter((k) => have.includes(k)).map((k) => [k, r.int(0, 2)]) });
      }
    }
    out.push(build("multi/all-sections", plan));
  }
  // the newer state sections only
  out.push(
    build("multi/usmn+usmd+usin+usky+usri", [
      { section: "usmn", set: [["SaleOptOut", 1]] },
      { section: "usmd", set: [["SaleOptOut", 2], ["Gpc", true]] },
      { section: "usin", set: [["SensitiveDataProcessing", [2, 2, 1, 1, 0, 0, 1, 2]]] },
      { section: "usky", set: [["SensitiveDataConsentSegmentIncluded", false]] },
      { section: "usri", set: [["TargetedAdvertisingOptOut", 1]] },
    ]),
  );
  return out;
}

// ---------------------------------------------------------------- legacy usnat version 1

function usnatLegacy() {
  return [
    build(
      "usnat/legacy-version-1",
      [
        {
          section: "usnat",
          set: [
            ["Version", 1],
            ["SaleOptOut", 1],
            ["SharingOptOut", 2],
            ["SensitiveDataProcessing", [1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 1, 2, 2, 2, 2]],
            ["KnownChildSensitiveDataConsents", [1, 2, 2]],
            ["MspaCoveredTransaction", 2],
          ],
        },
      ],
      "Version 1 (pre-2024 layout: 12 SensitiveDataProcessing and 2 KnownChildSensitiveDataConsents entries); the library drops the extra entries when encoding",
    ),
  ];
}

// ---------------------------------------------------------------- output

function vectors() {
  const out = [];
  const order = [...Sections.SECTION_ID_NAME_MAP].sort((a, b) => a[0] - b[0]);
  for (const [, name] of order) {
    if (name === "tcfeuv2") out.push(...tcfEuVectors());
    else if (name === "tcfcav1") out.push(...tcfCaVectors());
    else if (name === "uspv1") out.push(...uspVectors());
    else {
      const model = new GppModel();
      model.decodeSection(name, "");
      const C = model.sections.get(name).constructor;
      out.push(...usVectors(name, C));
      if (name === "usnat") out.push(...usnatLegacy());
    }
  }
  out.push(...multiVectors());
  const seen = new Set();
  for (const v of out) {
    if (seen.has(v.name)) throw new Error(`duplicate vector name ${v.name}`);
    seen.add(v.name);
  }
  return out;
}

// JSON with two-space indentation; arrays of scalars on one line.
function format(v, indent = "") {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  const inner = indent + "  ";
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    if (v.every((x) => x === null || typeof x !== "object")) return "[" + v.map((x) => JSON.stringify(x)).join(", ") + "]";
    return "[\n" + v.map((x) => inner + format(x, inner)).join(",\n") + "\n" + indent + "]";
  }
  const keys = Object.keys(v);
  if (keys.length === 0) return "{}";
  return "{\n" + keys.map((k) => inner + JSON.stringify(k) + ": " + format(v[k], inner)).join(",\n") + "\n" + indent + "}";
}

const doc = {
  library: LIB,
  version: LIB_VERSION,
  generated_by: "tests/gpp/vectors.mjs",
  dates: "ISO 8601 UTC strings (Date.prototype.toISOString); the encoding keeps deciseconds",
  vectors: vectors(),
};
const text = format(doc) + "\n";
const target = join(here, "vectors.json");
const arg = process.argv[2];
if (arg === "--stdout") {
  process.stdout.write(text);
} else if (arg === "--check") {
  let old = "";
  try {
    old = readFileSync(target, "utf8");
  } catch {}
  if (old !== text) {
    console.error("tests/gpp/vectors.json is not what vectors.mjs writes: run node vectors.mjs");
    process.exit(1);
  }
  console.error(`tests/gpp/vectors.json is current (${doc.vectors.length} vectors)`);
} else {
  writeFileSync(target, text);
  console.error(`wrote ${target}: ${doc.vectors.length} vectors`);
}
