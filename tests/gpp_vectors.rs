//! The GPP decoder against strings the IAB's own library made: tests/gpp/vectors.json, written
//! by `@iabgpp/cmpapi` 3.2.0 (tests/gpp/README.md), each with every field as that library reads
//! it back. Every US section, the US Privacy section and the TCF EU section decode field for
//! field; every header names the same sections.

use consent_proxy::consent::cmp::Reading;
use consent_proxy::consent::gpp::{self, SECTIONS, Value};
use consent_proxy::consent::{tcf, usprivacy};
use serde_json::Value as Json;

fn vectors() -> Vec<Json> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gpp/vectors.json");
    let file: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(file["library"], "@iabgpp/cmpapi");
    assert_eq!(file["version"], "3.2.0");
    file["vectors"].as_array().unwrap().clone()
}

fn json_of(value: &Value) -> Json {
    match value {
        Value::Int(i) => Json::from(*i),
        Value::List(l) => Json::from(l.clone()),
        Value::Bool(b) => Json::from(*b),
    }
}

/// Every (section name, section string, expected fields) in the file, several-section vectors
/// included.
fn sections(vectors: &[Json]) -> Vec<(String, String, Json, String)> {
    let mut out = Vec::new();
    for v in vectors {
        let name = v["name"].as_str().unwrap().to_string();
        match &v["section"] {
            Json::String(s) => out.push((
                s.clone(),
                v["sectionString"].as_str().unwrap().to_string(),
                v["fields"].clone(),
                name,
            )),
            Json::Array(list) => {
                for s in list {
                    let s = s.as_str().unwrap();
                    out.push((
                        s.to_string(),
                        v["sectionStrings"][s].as_str().unwrap().to_string(),
                        v["fields"][s].clone(),
                        name.clone(),
                    ));
                }
            }
            other => panic!("{name}: section {other}"),
        }
    }
    out
}

#[test]
fn headers_name_the_sections() {
    let vectors = vectors();
    for v in &vectors {
        let gpp_string = v["gpp"].as_str().unwrap();
        let expected: Vec<u64> = v["header"]["fields"]["SectionIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap())
            .collect();
        let split = gpp::sections(gpp_string).unwrap_or_else(|e| panic!("{}: {e:?}", v["name"]));
        let ids: Vec<u64> = split.iter().map(|(id, _)| u64::from(*id)).collect();
        assert_eq!(ids, expected, "{}", v["name"]);
    }
    assert!(vectors.len() >= 200, "{} vectors", vectors.len());
}

#[test]
fn us_sections_decode_field_for_field() {
    let vectors = vectors();
    let mut checked = std::collections::BTreeMap::<&str, usize>::new();
    for (section, string, fields, vector) in sections(&vectors) {
        let Some(def) = SECTIONS.iter().find(|d| d.name == section) else {
            continue;
        };
        let decoded = gpp::decode_us(def, &string)
            .unwrap_or_else(|e| panic!("{vector}: {section} {string}: {e:?}"));
        let expected = fields.as_object().unwrap();
        let names: Vec<&str> = decoded.iter().map(|(n, _)| *n).collect();
        let expected_names: Vec<&str> = expected.keys().map(String::as_str).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, expected_names, "{vector}: {section}: the fields");
        for (name, value) in &decoded {
            assert_eq!(
                json_of(value),
                expected[*name],
                "{vector}: {section}.{name}"
            );
        }
        *checked.entry(def.name).or_default() += 1;
    }
    // Every section the decoder knows was met in the file.
    for def in SECTIONS {
        assert!(
            checked.get(def.name).copied().unwrap_or(0) >= 10,
            "{}: {checked:?}",
            def.name
        );
    }
}

#[test]
fn us_privacy_sections_read_as_their_fields_say() {
    let vectors = vectors();
    let mut n = 0;
    for (section, string, fields, vector) in sections(&vectors) {
        if section != "uspv1" {
            continue;
        }
        let flags = [
            &fields["Notice"],
            &fields["OptOutSale"],
            &fields["LspaCovered"],
        ]
        .map(|f| f.as_str().unwrap().to_string());
        let expected = if flags.iter().all(|f| f == "-") {
            Reading::NotRequired
        } else if flags[1] == "Y" {
            Reading::OptOut(usprivacy::OPT_OUT_DENIES)
        } else {
            Reading::OptOut(consent_proxy::category::CategorySet::EMPTY)
        };
        assert_eq!(usprivacy::parse(&string), expected, "{vector}: {string}");
        n += 1;
    }
    assert!(n >= 7);
}

/// Deciseconds since the epoch, from the library's ISO 8601 date.
fn deciseconds(iso: &Json) -> u64 {
    let t = humantime::parse_rfc3339(iso.as_str().unwrap()).unwrap();
    (t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() / 100) as u64
}

fn bits(list: &Json) -> u64 {
    list.as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, b)| b.as_bool().unwrap())
        .fold(0, |acc, (i, _)| acc | 1 << i)
}

fn ids(list: &Json) -> Vec<u16> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as u16)
        .collect()
}

#[test]
fn tcf_sections_decode_field_for_field() {
    let vectors = vectors();
    let mut n = 0;
    for (section, string, f, vector) in sections(&vectors) {
        if section != "tcfeuv2" {
            continue;
        }
        let tc = tcf::decode(&string).unwrap_or_else(|e| panic!("{vector}: {e}"));
        let at = |what| format!("{vector}: {what}");
        assert_eq!(
            u64::from(tc.version),
            f["Version"].as_u64().unwrap(),
            "{}",
            at("Version")
        );
        assert_eq!(tc.created, deciseconds(&f["Created"]), "{}", at("Created"));
        assert_eq!(
            tc.last_updated,
            deciseconds(&f["LastUpdated"]),
            "{}",
            at("LastUpdated")
        );
        assert_eq!(
            u64::from(tc.cmp_id),
            f["CmpId"].as_u64().unwrap(),
            "{}",
            at("CmpId")
        );
        assert_eq!(u64::from(tc.cmp_version), f["CmpVersion"].as_u64().unwrap());
        assert_eq!(
            u64::from(tc.consent_screen),
            f["ConsentScreen"].as_u64().unwrap()
        );
        assert_eq!(tc.consent_language, f["ConsentLanguage"].as_str().unwrap());
        assert_eq!(
            u64::from(tc.vendor_list_version),
            f["VendorListVersion"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(tc.tcf_policy_version),
            f["PolicyVersion"].as_u64().unwrap()
        );
        assert_eq!(
            tc.is_service_specific,
            f["IsServiceSpecific"].as_bool().unwrap()
        );
        assert_eq!(
            tc.use_non_standard_texts,
            f["UseNonStandardStacks"].as_bool().unwrap()
        );
        assert_eq!(
            u64::from(tc.special_feature_opt_ins),
            bits(&f["SpecialFeatureOptins"]),
            "{}",
            at("SpecialFeatureOptins")
        );
        assert_eq!(
            u64::from(tc.purposes_consent),
            bits(&f["PurposeConsents"]),
            "{}",
            at("PurposeConsents")
        );
        assert_eq!(
            u64::from(tc.purposes_li_transparency),
            bits(&f["PurposeLegitimateInterests"]),
            "{}",
            at("PurposeLegitimateInterests")
        );
        assert_eq!(
            tc.purpose_one_treatment,
            f["PurposeOneTreatment"].as_bool().unwrap()
        );
        assert_eq!(tc.publisher_cc, f["PublisherCountryCode"].as_str().unwrap());
        assert_eq!(
            tc.vendor_consents.ids(),
            ids(&f["VendorConsents"]),
            "{}",
            at("VendorConsents")
        );
        assert_eq!(
            tc.vendor_legitimate_interests.ids(),
            ids(&f["VendorLegitimateInterests"]),
            "{}",
            at("VendorLegitimateInterests")
        );
        n += 1;
    }
    assert!(n >= 7, "{n}");
}

#[test]
fn damaged_strings_are_unreadable() {
    let vectors = vectors();
    let usnat = vectors
        .iter()
        .find(|v| v["name"] == "usnat/random-1")
        .unwrap();
    let whole = usnat["gpp"].as_str().unwrap();
    let def = SECTIONS.iter().find(|d| d.name == "usnat").unwrap();
    let section = usnat["sectionString"].as_str().unwrap();
    // A core cut short, a character outside base64url, a third segment.
    assert!(gpp::decode_us(def, &section[..5]).is_err());
    assert!(gpp::decode_us(def, &section.replacen('C', "+", 1)).is_err());
    assert!(gpp::decode_us(def, &format!("{section}.QA")).is_err());
    // A header naming one section before two, and one of another type.
    assert!(gpp::sections(&format!("{whole}~{section}")).is_err());
    assert!(gpp::sections(&whole.replacen('D', "E", 1)).is_err());
    assert!(gpp::sections("").is_err());
}
