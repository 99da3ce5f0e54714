use serde_json::json;

use super::filter::{AttrPath, Filter, Literal, Op, PatchPath, MAX_DEPTH};

/// RFC 7644 §3.4.2.2's examples, and what Entra and Okta send.
const EXAMPLES: &[&str] = &[
    r#"userName Eq "john""#,
    r#"name.familyName co "O'Malley""#,
    r#"userName sw "J""#,
    r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
    "title pr",
    r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
    r#"title pr and userType eq "Employee""#,
    r#"title pr or userType eq "Intern""#,
    r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
    r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
    r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
    r#"userType eq "Employee" and (emails.type eq "work")"#,
    r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
    r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    r#"externalId eq "1a2b""#,
    r#"displayName eq "Students""#,
    r#"id eq "2819c223-7f76-453a-919d-413861904646""#,
    r#"active eq false"#,
    r#"meta.version le 10.5"#,
    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
];

#[test]
fn every_rfc_and_provider_example_parses_and_prints_back_to_the_same_filter() {
    for text in EXAMPLES {
        let f = Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let printed = f.to_string();
        assert_eq!(Filter::parse(&printed).unwrap(), f, "{text} → {printed}");
    }
}

fn attr(name: &str) -> AttrPath {
    AttrPath { uri: None, name: name.into(), sub: None }
}

#[test]
fn and_binds_tighter_than_or_and_names_keep_their_uri_and_sub_attribute() {
    let f = Filter::parse("a pr or b pr and c pr").unwrap();
    let (a, b, c) = (Filter::Present(attr("a")), Filter::Present(attr("b")), Filter::Present(attr("c")));
    assert_eq!(f, Filter::Or(Box::new(a), Box::new(Filter::And(Box::new(b), Box::new(c)))));
    let f =
        Filter::parse(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x""#).unwrap();
    let Filter::Compare(a, Op::Eq, Literal::Str(v)) = f else { panic!("{f:?}") };
    assert_eq!(a.uri.as_deref(), Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
    assert_eq!((a.name.as_str(), a.sub.as_deref(), v.as_str()), ("manager", Some("value"), "x"));
    let f = Filter::parse(r#"userName eq "a \"quoted\" \u00e9""#).unwrap();
    assert_eq!(f.simple_eq().map(|(a, v)| (a.name.as_str(), v)), Some(("userName", "a \"quoted\" é")));
}

#[test]
fn mistakes_are_refused_with_where_they_are() {
    for (text, says) in [
        ("", "expected an attribute name"),
        ("userName", "expected an operator"),
        (r#"userName xx "a""#, "unknown operator"),
        ("userName eq", "expected a value"),
        ("userName eq john", "expected a value"),
        (r#"userName eq "a"#, "closing quote"),
        (r#"(userName eq "a""#, "expected ')'"),
        (r#"userName eq "a")"#, "after the end"),
        (r#"emails[type eq "work""#, "expected ']'"),
        (r#"not userName eq "a""#, "expected '(' after not"),
        (r#"1abc eq "a""#, "not an attribute name"),
        (r#"userName eq "a" and"#, "expected an attribute name"),
        ("userName eq 1e999", "expected a value"),
    ] {
        let e = Filter::parse(text).unwrap_err();
        assert!(e.message.contains(says), "{text:?}: {e}");
    }
    let e = Filter::parse(r#"userName eq "a" xx"#).unwrap_err();
    assert_eq!(e.at, 16, "{e}");
}

#[test]
fn nesting_and_length_are_bounded() {
    let deep = format!("{}a pr{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    assert!(Filter::parse(&deep).unwrap_err().message.contains("nested deeper"));
    let nots = format!("{}a pr{}", "not (".repeat(100_000 / 6), ")".repeat(100_000 / 6));
    assert!(Filter::parse(&nots).is_err(), "refused, not a stack overflow");
    // A long flat chain is fine, and prints back flat.
    let chain = (0..200).map(|i| format!("a{i} pr")).collect::<Vec<_>>().join(" and ");
    let f = Filter::parse(&chain).unwrap();
    assert_eq!(Filter::parse(&f.to_string()).unwrap(), f);
}

fn user() -> serde_json::Value {
    json!({
        "id": "2819c223", "userName": "Bjensen", "externalId": "Ext-1", "active": true,
        "name": { "familyName": "Jensen", "givenName": "Barbara" },
        "emails": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@jensen.org", "type": "home" }
        ],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "employeeNumber": "701984" },
        "meta": { "version": 3 }
    })
}

fn matches(text: &str) -> bool {
    // externalId and id compare with case (RFC 7643: caseExact), the rest without.
    let exact = |a: &AttrPath| a.name.eq_ignore_ascii_case("externalId") || a.name.eq_ignore_ascii_case("id");
    Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).matches(&user(), &exact)
}

#[test]
fn a_filter_evaluates_against_a_resource_with_case_as_each_attribute_says() {
    for (text, want) in [
        (r#"USERNAME eq "bjensen""#, true),
        (r#"externalId eq "ext-1""#, false),
        (r#"externalId eq "Ext-1""#, true),
        (r#"name.familyName sw "jen""#, true),
        (r#"emails[type eq "work" and value ew "@example.com"]"#, true),
        (r#"emails[type eq "home" and value ew "@example.com"]"#, false),
        (r#"emails.value co "jensen.org""#, true),
        (r#"emails.type eq "school""#, false),
        ("title pr", false),
        ("name pr", true),
        (r#"title ne "x""#, true),
        ("active eq true", true),
        (r#"active eq "False""#, false),
        ("meta.version ge 3", true),
        ("meta.version gt 3", false),
        (r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#, true),
        (r#"not (userName eq "bjensen") or active eq true"#, true),
        (r#"not (userName eq "bjensen" or active eq true)"#, false),
    ] {
        assert_eq!(matches(text), want, "{text}");
    }
}

#[test]
fn patch_paths_name_an_attribute_some_of_its_values_and_their_sub_attribute() {
    let p = PatchPath::parse(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#).unwrap();
    assert_eq!(p.attr, attr("members"));
    assert_eq!(
        p.filter.as_ref().and_then(|f| f.simple_eq()).map(|(a, v)| (a.name.as_str(), v)),
        Some(("value", "2819c223-7f76-453a-919d-413861904646"))
    );
    let p = PatchPath::parse(r#"emails[type eq "work"].value"#).unwrap();
    assert_eq!((p.attr.name.as_str(), p.sub.as_deref()), ("emails", Some("value")));
    let p = PatchPath::parse("name.givenName").unwrap();
    assert_eq!((p.attr.name.as_str(), p.attr.sub.as_deref(), p.filter), ("name", Some("givenName"), None));
    let p = PatchPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department").unwrap();
    assert_eq!(p.attr.name, "department");
    for bad in ["", "members[", "members[value eq \"a\"] x", "emails[type eq \"w\"].", "9x", "members]"] {
        assert!(PatchPath::parse(bad).is_err(), "{bad:?}");
    }
}

mod discovery {
    use super::super::discovery::*;

    const BASE: &str = "https://h/scim/v2";

    #[test]
    fn the_service_provider_config_says_exactly_what_is_supported() {
        let c = service_provider_config(BASE);
        assert_eq!(c["patch"]["supported"], true);
        assert_eq!((c["filter"]["supported"].as_bool(), c["filter"]["maxResults"].as_u64()), (Some(true), Some(200)));
        for unsupported in ["bulk", "changePassword", "sort", "etag"] {
            assert_eq!(c[unsupported]["supported"], false, "{unsupported}");
        }
        assert_eq!(c["authenticationSchemes"][0]["type"], "oauthbearertoken");
        assert_eq!(c["meta"]["location"], format!("{BASE}/ServiceProviderConfig"));
    }

    #[test]
    fn resource_types_name_schemas_that_the_schemas_document_has() {
        let schemas = schemas(BASE);
        let ids: Vec<&str> = schemas.iter().map(|s| s["id"].as_str().unwrap()).collect();
        for t in resource_types(BASE) {
            assert!(ids.contains(&t["schema"].as_str().unwrap()), "{t}");
            for e in t["schemaExtensions"].as_array().unwrap() {
                assert!(ids.contains(&e["schema"].as_str().unwrap()), "{e}");
            }
        }
    }

    #[test]
    fn every_attribute_is_described_in_full_and_names_compare_as_the_rfc_says() {
        fn check(a: &serde_json::Value) {
            for key in ["name", "type", "multiValued", "required", "caseExact", "mutability", "returned", "uniqueness"]
            {
                assert!(!a[key].is_null(), "{key} missing in {a}");
            }
            if a["type"] == "complex" {
                a["subAttributes"].as_array().expect("a complex attribute has sub-attributes").iter().for_each(check);
            }
        }
        let schemas = schemas(BASE);
        for s in &schemas {
            s["attributes"].as_array().unwrap().iter().for_each(check);
        }
        let user = &schemas[0]["attributes"];
        let find = |n: &str| user.as_array().unwrap().iter().find(|a| a["name"] == n).unwrap().clone();
        assert_eq!(
            (find("userName")["uniqueness"].as_str(), find("userName")["required"].as_bool()),
            (Some("server"), Some(true))
        );
        assert_eq!(find("externalId")["caseExact"], true, "RFC 7643 §3.1");
    }

    #[test]
    fn an_error_body_has_its_status_as_a_string_and_its_scim_type() {
        let e = ScimError::new(409, Some("uniqueness"), "userName \"bjensen\" is taken");
        let b = e.body();
        assert_eq!((b["status"].as_str(), b["scimType"].as_str()), (Some("409"), Some("uniqueness")));
        assert_eq!(b["schemas"][0], ERROR);
        assert!(ScimError::new(404, None, "no such user").body().get("scimType").is_none());
        let l = list(vec![serde_json::json!({"id": "a"})], 7, 3);
        assert_eq!(
            (l["totalResults"].as_u64(), l["startIndex"].as_u64(), l["itemsPerPage"].as_u64()),
            (Some(7), Some(3), Some(1))
        );
    }
}

mod resources {
    use serde_json::json;

    use crate::scim::filter::PatchPath;
    use crate::scim::resource::{apply_patch, clean_body, is_active, project, select, texts, Kind};

    fn patch(kind: Kind, r: &mut serde_json::Value, ops: serde_json::Value) -> Result<(), String> {
        apply_patch(
            kind,
            r,
            &json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops }),
        )
        .map_err(|e| format!("{} {:?} {}", e.status, e.scim_type, e.detail))
    }

    #[test]
    fn a_body_loses_read_only_attributes_and_its_string_booleans_become_booleans() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "theirs", "meta": {"version": "1"}, "groups": [{"value": "g"}], "password": "Secret1!",
            "userName": "ada", "active": "False", "emails": [{"value": "a@x", "primary": "True"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Maths"}
        });
        let kept = serde_json::Value::Object(clean_body(Kind::User, &body).unwrap());
        for gone in ["id", "meta", "groups", "password", "schemas"] {
            assert!(kept.get(gone).is_none(), "{gone} kept: {kept}");
        }
        assert_eq!(kept["active"], json!(false));
        assert!(!is_active(&kept));
        assert_eq!(kept["emails"][0]["primary"], json!(true));
        let dept = PatchPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department").unwrap();
        assert_eq!(texts(&kept, &dept), ["Maths"]);
        let e = clean_body(Kind::User, &json!({"userName": "a", "shoeSize": 9})).unwrap_err();
        assert_eq!((e.status, e.scim_type), (400, Some("invalidPath")));
    }

    #[test]
    fn entra_replace_without_path_takes_dotted_and_urn_qualified_keys() {
        let mut r = json!({"userName": "ada", "name": {"givenName": "Ada"}, "active": true});
        patch(
            Kind::User,
            &mut r,
            json!([{ "op": "Replace", "value": {
                "name.familyName": "Lovelace",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Engines",
                "active": "False"
            }}]),
        )
        .unwrap();
        assert_eq!(r["name"], json!({"givenName": "Ada", "familyName": "Lovelace"}));
        assert_eq!(r["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"], "Engines");
        assert_eq!(r["active"], json!(false));
    }

    #[test]
    fn a_value_filter_path_adds_the_value_it_names_when_none_matches() {
        let mut r = json!({"userName": "ada", "emails": [{"type": "home", "value": "h@x"}]});
        patch(Kind::User, &mut r, json!([{"op": "add", "path": "emails[type eq \"work\"].value", "value": "w@x"}]))
            .unwrap();
        let work = PatchPath::parse("emails[type eq \"work\"].value").unwrap();
        assert_eq!(texts(&r, &work), ["w@x"]);
        patch(Kind::User, &mut r, json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "v@x"}]))
            .unwrap();
        assert_eq!(texts(&r, &work), ["v@x"]);
        assert_eq!(r["emails"].as_array().unwrap().len(), 2, "{r}");
        patch(Kind::User, &mut r, json!([{"op": "remove", "path": "emails[type eq \"home\"]"}])).unwrap();
        assert_eq!(r["emails"].as_array().unwrap().len(), 1, "{r}");
    }

    #[test]
    fn members_are_added_and_removed_by_value_in_one_request() {
        let mut g = json!({"displayName": "Staff", "members": [{"value": "u1"}, {"value": "u2"}]});
        patch(
            Kind::Group,
            &mut g,
            json!([
                {"op": "Add", "path": "members", "value": [{"value": "u3"}, {"value": "u1"}]},
                {"op": "Remove", "path": "members[value eq \"u2\"]"},
                {"op": "remove", "path": "members", "value": [{"value": "u1"}]}
            ]),
        )
        .unwrap();
        let ids: Vec<&str> = g["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap()).collect();
        assert_eq!(ids, ["u3"]);
        // Member ids compare with case: "U3" is another member.
        patch(Kind::Group, &mut g, json!([{"op": "remove", "path": "members[value eq \"U3\"]"}])).unwrap();
        assert_eq!(g["members"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_patch_of_an_unknown_attribute_or_op_is_refused_by_name() {
        let mut r = json!({"userName": "ada"});
        let e = patch(Kind::User, &mut r, json!([{"op": "replace", "path": "shoeSize", "value": 9}])).unwrap_err();
        assert!(e.starts_with("400 Some(\"invalidPath\")") && e.contains("shoeSize"), "{e}");
        let e = patch(Kind::User, &mut r, json!([{"op": "merge", "path": "userName", "value": "x"}])).unwrap_err();
        assert!(e.contains("invalidSyntax") && e.contains("merge"), "{e}");
        let e = patch(Kind::User, &mut r, json!([{"op": "remove"}])).unwrap_err();
        assert!(e.contains("noTarget"), "{e}");
        // Attributes of an extension dirsync does not know are kept.
        patch(Kind::User, &mut r, json!([{"op": "add", "path": "urn:example:ext:2.0:User:badge", "value": "7"}]))
            .unwrap();
        assert_eq!(r["urn:example:ext:2.0:User"]["badge"], "7");
        // Read-only attributes are ignored, not errors.
        patch(Kind::User, &mut r, json!([{"op": "replace", "path": "id", "value": "mine"}])).unwrap();
        assert!(r.get("id").is_none());
    }

    #[test]
    fn a_path_selects_the_primary_email_and_projection_keeps_what_is_asked() {
        let r = json!({"id": "1", "userName": "ada", "name": {"formatted": "Ada L", "givenName": "Ada"},
            "emails": [{"value": "a@home", "primary": false}, {"value": "a@work", "primary": true}],
            "meta": {"resourceType": "User"}});
        let p = PatchPath::parse("emails[primary eq true].value").unwrap();
        assert_eq!(select(&r, &p), [&json!("a@work")]);
        let mut a = r.clone();
        project(&mut a, Some("userName,name.givenName"), None);
        assert_eq!(
            a,
            json!({"id": "1", "userName": "ada", "name": {"givenName": "Ada"}, "meta": {"resourceType": "User"}})
        );
        let mut b = r.clone();
        project(&mut b, None, Some("emails,name.formatted"));
        assert!(b.get("emails").is_none() && b["name"].get("formatted").is_none() && b["userName"] == "ada", "{b}");
    }
}
