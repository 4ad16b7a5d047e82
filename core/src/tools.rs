//! Registered SQL functions as tools: the JSON Schema the model sees, and the model's JSON
//! arguments turned into typed SQL parameters.
//!
//! Values are never spliced into SQL text: each argument becomes a `text` parameter (`$1`, `$2`,
//! …) cast to the declared type, so PostgreSQL's own input function validates it.

use serde_json::{json, Map, Value};

/// The tools built into the loop: rows of `agent_loop.tools` with no function (a table
/// constraint ties the two), routed by this table and never by comparing names elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// One read-only query, rolled back, as the task's owner.
    SqlQuery,
    /// Starts subtasks and parks the task until they end.
    SpawnSubtasks,
}

impl Builtin {
    pub const ALL: [Builtin; 2] = [Builtin::SqlQuery, Builtin::SpawnSubtasks];

    pub fn name(self) -> &'static str {
        match self {
            Builtin::SqlQuery => "sql_query",
            Builtin::SpawnSubtasks => crate::subtasks::TOOL,
        }
    }

    /// The built-in tool called `name`.
    pub fn named(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// One input argument of a SQL function, as the catalog describes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SqlArg {
    /// The argument's name; unnamed arguments are called `arg1`, `arg2`, … and passed by
    /// position.
    pub name: String,
    pub named: bool,
    /// `format_type()` of the argument's type, e.g. `integer`, `date`, `text[]`.
    pub type_name: String,
    pub has_default: bool,
}

impl SqlArg {
    /// The arguments a `tools.signature` lists (`[{name, named, type, has_default}]`, as
    /// `register_tool` writes it), or why it is not one.
    pub fn from_signature(signature: &Value) -> Result<Vec<SqlArg>, &'static str> {
        signature
            .as_array()
            .ok_or("signature must be a JSON array")?
            .iter()
            .map(|a| {
                let text = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_owned);
                let flag = |k: &str| a.get(k).and_then(Value::as_bool).unwrap_or(false);
                Ok(SqlArg {
                    name: text("name").ok_or("argument without name")?,
                    type_name: text("type").ok_or("argument without type")?,
                    named: flag("named"),
                    has_default: flag("has_default"),
                })
            })
            .collect()
    }
}

/// A SQL function registered as a tool.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SqlFunction {
    /// Schema-qualified, quoted name: `public.orders_by_day`.
    pub target: String,
    pub args: Vec<SqlArg>,
    pub returns_set: bool,
    pub returns_void: bool,
}

/// JSON Schema of the arguments object.
pub fn parameters_schema(args: &[SqlArg]) -> Value {
    let mut properties = Map::new();
    for arg in args {
        properties.insert(arg.name.clone(), type_schema(&arg.type_name));
    }
    let required: Vec<&str> = args
        .iter()
        .filter(|a| !a.has_default)
        .map(|a| a.name.as_str())
        .collect();
    json!({"type": "object", "properties": properties, "required": required,
           "additionalProperties": false})
}

fn type_schema(type_name: &str) -> Value {
    if let Some(element) = type_name.strip_suffix("[]") {
        return json!({"type": "array", "items": type_schema(element)});
    }
    let described = |t: &str| json!({"type": t, "description": format!("PostgreSQL {type_name}")});
    match type_name {
        "smallint" | "integer" | "bigint" => described("integer"),
        "numeric" | "real" | "double precision" => described("number"),
        "boolean" => described("boolean"),
        "json" | "jsonb" => json!({"description": format!("any JSON value ({type_name})")}),
        "date" => json!({"type": "string", "format": "date"}),
        t if t.starts_with("timestamp") => json!({"type": "string", "format": "date-time"}),
        "uuid" => json!({"type": "string", "format": "uuid"}),
        _ => described("string"),
    }
}

/// The SQL statement that calls `function` with parameters `$1..$n` for the given arguments,
/// and returns its result as one jsonb value.
pub fn call_statement(function: &SqlFunction, bound: &[BoundArg]) -> String {
    let all_named = function.args.iter().all(|a| a.named);
    let params: Vec<String> = bound
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let cast = format!("${}::{}", i + 1, b.type_name);
            if all_named {
                format!("{} => {cast}", quote_ident(&b.name))
            } else {
                cast
            }
        })
        .collect();
    let call = format!("{}({})", function.target, params.join(", "));
    if function.returns_set {
        format!("SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]'::jsonb) FROM {call} AS r")
    } else if function.returns_void {
        format!("SELECT 'null'::jsonb FROM (SELECT {call}) AS r")
    } else {
        format!("SELECT to_jsonb({call})")
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One argument ready to bind: its text form, or `None` for SQL NULL.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundArg {
    pub name: String,
    pub type_name: String,
    pub text: Option<String>,
}

/// Checks the model's arguments against the signature. Errors are written for the model, which
/// sees them as the tool's result and can correct itself.
pub fn bind_arguments(function: &SqlFunction, arguments: &str) -> Result<Vec<BoundArg>, String> {
    let trimmed = arguments.trim();
    let parsed: Value = if trimmed.is_empty() {
        json!({})
    } else {
        serde_json::from_str(trimmed).map_err(|e| format!("arguments are not valid JSON: {e}"))?
    };
    let Value::Object(mut given) = parsed else {
        return Err("arguments must be a JSON object".into());
    };
    let all_named = function.args.iter().all(|a| a.named);
    let mut bound = Vec::new();
    for arg in &function.args {
        match given.remove(&arg.name) {
            Some(value) => bound.push(BoundArg {
                name: arg.name.clone(),
                type_name: arg.type_name.clone(),
                text: sql_text(&value, arg.type_name.ends_with("[]")),
            }),
            // Named notation lets PostgreSQL fill in defaults for omitted arguments.
            None if arg.has_default && all_named => {}
            None => return Err(format!("missing required argument \"{}\"", arg.name)),
        }
    }
    if let Some(unknown) = given.keys().next() {
        let expected: Vec<&str> = function.args.iter().map(|a| a.name.as_str()).collect();
        return Err(format!(
            "unknown argument \"{unknown}\"; expected {}",
            if expected.is_empty() {
                "none".to_string()
            } else {
                expected.join(", ")
            }
        ));
    }
    Ok(bound)
}

/// The text form PostgreSQL's input function reads for a JSON value.
fn sql_text(value: &Value, array_type: bool) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if array_type => Some(array_literal(items)),
        other => Some(other.to_string()),
    }
}

fn array_literal(items: &[Value]) -> String {
    let elements: Vec<String> = items
        .iter()
        .map(|v| match v {
            Value::Null => "NULL".to_owned(),
            Value::Array(inner) => array_literal(inner),
            Value::String(s) => quote_element(s),
            other => quote_element(&other.to_string()),
        })
        .collect();
    format!("{{{}}}", elements.join(","))
}

fn quote_element(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The statement that runs a task's `accept_if` expression: `$1` is the answer text, `$2` the
/// structured output. The newline keeps a trailing `-- comment` from swallowing the cast.
pub fn accept_if_statement(accept_if: &str) -> String {
    format!("SELECT ({accept_if}\n)::boolean")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_tool_is_in_the_table_and_found_by_name() {
        // A new built-in does not compile here until it has a number, nor pass until ALL has it.
        let number = |b: Builtin| match b {
            Builtin::SqlQuery => 0,
            Builtin::SpawnSubtasks => 1,
        };
        let numbers: Vec<usize> = Builtin::ALL.into_iter().map(number).collect();
        assert_eq!(numbers, [0, 1]);
        for b in Builtin::ALL {
            assert_eq!(Builtin::named(b.name()), Some(b));
        }
        assert_eq!(Builtin::named("orders_by_day"), None);
    }

    fn arg(name: &str, type_name: &str, has_default: bool) -> SqlArg {
        SqlArg {
            name: name.into(),
            named: true,
            type_name: type_name.into(),
            has_default,
        }
    }

    fn orders_by_day() -> SqlFunction {
        SqlFunction {
            target: "public.orders_by_day".into(),
            args: vec![
                arg("day", "date", false),
                arg("limit_rows", "integer", true),
                arg("tags", "text[]", true),
            ],
            returns_set: true,
            returns_void: false,
        }
    }

    #[test]
    fn schema_follows_the_signature() {
        let schema = parameters_schema(&orders_by_day().args);
        assert_eq!(schema["properties"]["day"]["format"], "date");
        assert_eq!(schema["properties"]["limit_rows"]["type"], "integer");
        assert_eq!(schema["properties"]["tags"]["items"]["type"], "string");
        assert_eq!(schema["required"], json!(["day"]));
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn arguments_bind_as_typed_parameters_never_spliced() {
        let f = orders_by_day();
        let bound = bind_arguments(
            &f,
            r#"{"day": "2024-01-02'); drop table x; --", "tags": ["a\"b", null]}"#,
        )
        .unwrap();
        assert_eq!(
            bound[0].text.as_deref(),
            Some("2024-01-02'); drop table x; --")
        );
        assert_eq!(bound[1].text.as_deref(), Some(r#"{"a\"b",NULL}"#));
        let sql = call_statement(&f, &bound);
        assert_eq!(
            sql,
            "SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]'::jsonb) FROM public.orders_by_day(\"day\" => $1::date, \"tags\" => $2::text[]) AS r"
        );
        assert!(!sql.contains("drop table"));
    }

    #[test]
    fn bad_arguments_explain_themselves_to_the_model() {
        let f = orders_by_day();
        assert!(bind_arguments(&f, "{not json")
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(bind_arguments(&f, "[1]")
            .unwrap_err()
            .contains("JSON object"));
        assert!(bind_arguments(&f, "{}")
            .unwrap_err()
            .contains("missing required argument \"day\""));
        let err = bind_arguments(&f, r#"{"day": "2024-01-01", "colour": 1}"#).unwrap_err();
        assert!(
            err.contains("unknown argument \"colour\"") && err.contains("day"),
            "{err}"
        );
    }

    #[test]
    fn unnamed_arguments_go_by_position_and_scalars_to_jsonb() {
        let f = SqlFunction {
            target: "public.add".into(),
            args: vec![
                SqlArg {
                    name: "arg1".into(),
                    named: false,
                    type_name: "integer".into(),
                    has_default: false,
                },
                SqlArg {
                    name: "arg2".into(),
                    named: false,
                    type_name: "integer".into(),
                    has_default: false,
                },
            ],
            returns_set: false,
            returns_void: false,
        };
        let bound = bind_arguments(&f, r#"{"arg1": 1, "arg2": 2}"#).unwrap();
        assert_eq!(
            call_statement(&f, &bound),
            "SELECT to_jsonb(public.add($1::integer, $2::integer))"
        );
        assert_eq!(
            bind_arguments(&f, "").unwrap_err(),
            "missing required argument \"arg1\""
        );
    }
}
