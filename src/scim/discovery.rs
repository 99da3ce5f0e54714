//! SCIM's discovery documents (RFC 7643 §5–7, RFC 7644 §4) and its error
//! answer (RFC 7644 §3.12): what the service supports, said exactly (PATCH
//! and filters yes, bulk, sort, etags and password changes no, bearer
//! tokens), the two resource types and the schemas of their attributes.

use serde_json::{json, Value};

/// The JSON media type SCIM answers with.
pub const CONTENT_TYPE: &str = "application/scim+json";

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The most resources one list answer holds (`filter.maxResults`).
pub const MAX_RESULTS: usize = 200;

/// A SCIM error: its HTTP status, its `scimType` (RFC 7644 Table 9) and a
/// detail for the admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {}: {detail}", scim_type.unwrap_or("-"))]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> ScimError {
        ScimError { status, scim_type, detail: detail.into() }
    }

    /// The error's JSON body (`status` is a string, as the RFC has it).
    pub fn body(&self) -> Value {
        let mut v = json!({ "schemas": [ERROR], "status": self.status.to_string(), "detail": self.detail });
        if let Some(t) = self.scim_type {
            v["scimType"] = json!(t);
        }
        v
    }
}

/// `/ServiceProviderConfig`; `base` is the service's `/scim/v2` URL.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/dirsync/dirsync#scim",
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": false },
        "sort": { "supported": false },
        "etag": { "supported": false },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "The token configured for this SCIM source (token_file or token_env), as Authorization: Bearer",
            "primary": true
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig") }
    })
}

/// `/ResourceTypes`: users (with the enterprise extension) and groups.
pub fn resource_types(base: &str) -> Vec<Value> {
    let kind = |id: &str, endpoint: &str, schema: &str, description: &str, extensions: Value| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": id, "name": id, "endpoint": endpoint, "description": description, "schema": schema,
            "schemaExtensions": extensions,
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{id}") }
        })
    };
    vec![
        kind("User", "/Users", USER, "A person", json!([{ "schema": ENTERPRISE, "required": false }])),
        kind("Group", "/Groups", GROUP, "A group of users", json!([])),
    ]
}

/// One attribute's definition.
fn attribute(name: &str, kind: &str, multi: bool, required: bool, case_exact: bool, uniqueness: &str) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": multi, "required": required, "caseExact": case_exact,
        "mutability": if name == "id" || name == "groups" { "readOnly" } else { "readWrite" }, "returned": "default",
        "uniqueness": uniqueness, "description": name
    })
}

fn string(name: &str) -> Value {
    attribute(name, "string", false, false, false, "none")
}

fn complex(name: &str, multi: bool, subs: Vec<Value>) -> Value {
    let mut a = attribute(name, "complex", multi, false, false, "none");
    a["subAttributes"] = Value::Array(subs);
    a
}

/// `/Schemas`: the attributes dirsync reads of each resource.
pub fn schemas(base: &str) -> Vec<Value> {
    let schema = |id: &str, name: &str, attributes: Vec<Value>| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": id, "name": name, "description": name, "attributes": attributes,
            "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{id}") }
        })
    };
    let multi_value = |name: &str| {
        complex(
            name,
            true,
            vec![
                string("value"),
                string("type"),
                attribute("primary", "boolean", false, false, false, "none"),
                string("display"),
            ],
        )
    };
    let user = vec![
        attribute("userName", "string", false, true, false, "server"),
        complex(
            "name",
            false,
            vec![
                string("formatted"),
                string("familyName"),
                string("givenName"),
                string("middleName"),
                string("honorificPrefix"),
                string("honorificSuffix"),
            ],
        ),
        string("displayName"),
        string("nickName"),
        string("title"),
        string("userType"),
        string("preferredLanguage"),
        string("locale"),
        attribute("active", "boolean", false, false, false, "none"),
        attribute("externalId", "string", false, false, true, "none"),
        multi_value("emails"),
        multi_value("phoneNumbers"),
        complex(
            "groups",
            true,
            vec![string("value"), string("display"), attribute("$ref", "reference", false, false, false, "none")],
        ),
    ];
    let group = vec![
        attribute("displayName", "string", false, true, false, "none"),
        attribute("externalId", "string", false, false, true, "none"),
        complex(
            "members",
            true,
            vec![
                string("value"),
                string("display"),
                string("type"),
                attribute("$ref", "reference", false, false, false, "none"),
            ],
        ),
    ];
    let enterprise = vec![
        string("employeeNumber"),
        string("costCenter"),
        string("organization"),
        string("division"),
        string("department"),
        complex("manager", false, vec![string("value"), string("displayName")]),
    ];
    vec![schema(USER, "User", user), schema(GROUP, "Group", group), schema(ENTERPRISE, "EnterpriseUser", enterprise)]
}

/// A list answer (`ListResponse`), one page of it.
pub fn list(resources: Vec<Value>, total: usize, start_index: usize) -> Value {
    json!({
        "schemas": [LIST],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources
    })
}
