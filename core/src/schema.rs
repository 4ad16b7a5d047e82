//! Structured output: reading a final answer as JSON and checking it against the task's JSON
//! Schema.
//!
//! The validator covers the keywords models are asked to follow in practice — `type`, `enum`,
//! `const`, `properties`, `required`, `additionalProperties`, `items`, `minItems`, `maxItems`,
//! `minLength`, `maxLength`, `minimum`, `maximum`, `anyOf`, `allOf` — and ignores the others
//! (`description`, `format`, `$schema`, …), so a schema written for a provider's strict mode
//! works unchanged. The first violation is reported with its JSON path, which goes back to the
//! model as the reason its answer was not accepted.

use serde_json::Value;

/// Reads the answer as JSON: the whole text, or the body of one fenced code block around it.
pub fn parse_answer(text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    let unfenced = trimmed
        .strip_prefix("```")
        .and_then(|rest| rest.strip_suffix("```"))
        .map(|body| body.trim_start_matches("json").trim())
        .unwrap_or(trimmed);
    serde_json::from_str(unfenced).map_err(|e| format!("the answer is not JSON ({e})"))
}

/// How deep a task's `output_schema` may nest. Past it, submit() refuses the schema: it is
/// parsed again when the task is claimed, and a parser's recursion limit must not be what
/// refuses it there.
pub const MAX_SCHEMA_DEPTH: usize = 32;

/// How deeply arrays and objects nest in the JSON text `text` (0 for a scalar), read without
/// parsing it, so that any depth can be measured.
pub fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Checks `value` against `schema`; the error names the first place that does not match.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "$")
}

fn check(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        // `true` (and any non-object) accepts everything; `false` nothing.
        return match schema {
            Value::Bool(false) => Err(format!("{path}: no value is allowed here")),
            _ => Ok(()),
        };
    };
    let fail = |why: String| Err(format!("{path}: {why}"));
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !allowed.is_empty() && !allowed.iter().any(|t| has_type(value, t)) {
            return fail(format!(
                "expected {}, got {}",
                allowed.join(" or "),
                type_name(value)
            ));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return fail(format!(
                "{value} is not one of {}",
                Value::from(options.clone())
            ));
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            return fail(format!("expected {constant}, got {value}"));
        }
    }
    let limit = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(n) = value.as_f64() {
        if let Some(min) = limit("minimum").filter(|min| n < *min) {
            return fail(format!("{n} is less than the minimum {min}"));
        }
        if let Some(max) = limit("maximum").filter(|max| n > *max) {
            return fail(format!("{n} is more than the maximum {max}"));
        }
    }
    if let Some(s) = value.as_str() {
        let chars = s.chars().count() as f64;
        if limit("minLength").is_some_and(|min| chars < min) {
            return fail(format!(
                "the string is shorter than {}",
                schema["minLength"]
            ));
        }
        if limit("maxLength").is_some_and(|max| chars > max) {
            return fail(format!("the string is longer than {}", schema["maxLength"]));
        }
    }
    if let Some(items) = value.as_array() {
        let n = items.len() as f64;
        if limit("minItems").is_some_and(|min| n < min) {
            return fail(format!("fewer than {} items", schema["minItems"]));
        }
        if limit("maxItems").is_some_and(|max| n > max) {
            return fail(format!("more than {} items", schema["maxItems"]));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(item_schema, item, &format!("{path}[{i}]"))?;
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(key) {
                return fail(format!("missing required property \"{key}\""));
            }
        }
        for (key, field) in object {
            let field_path = format!("{path}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(field_schema) => check(field_schema, field, &field_path)?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return fail(format!("property \"{key}\" is not allowed"))
                    }
                    Some(extra) => check(extra, field, &field_path)?,
                    None => {}
                },
            }
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(sub, value, path)?;
        }
    }
    if let Some(any) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        let errors: Vec<String> = any
            .iter()
            .filter_map(|sub| check(sub, value, path).err())
            .collect();
        if errors.len() == any.len() && !any.is_empty() {
            return fail(format!(
                "matches none of the allowed forms ({})",
                errors.join("; ")
            ));
        }
    }
    Ok(())
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "integer" => {
            value.as_i64().is_some()
                || value.as_u64().is_some()
                || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "number" => value.is_number(),
        other => type_name(value) == other,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nesting_depth_counts_brackets_outside_strings() {
        assert_eq!(nesting_depth("1"), 0);
        assert_eq!(nesting_depth(r#"{"a": [1, {"b": "[[[{"}]}"#), 3);
        assert_eq!(nesting_depth(r#"["\\\"[", []]"#), 2);
        let deep = "[".repeat(300) + &"]".repeat(300);
        assert_eq!(nesting_depth(&deep), 300);
    }

    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["product", "units"],
            "additionalProperties": false,
            "properties": {
                "product": {"type": "string", "minLength": 1},
                "units": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"enum": ["new", "sale"]}, "maxItems": 2},
                "note": {"type": ["string", "null"], "description": "ignored keyword"}
            }
        })
    }

    #[test]
    fn a_matching_answer_passes_fenced_or_not() {
        let v = parse_answer("```json\n{\"product\": \"tea\", \"units\": 3, \"tags\": [\"sale\"], \"note\": null}\n```").unwrap();
        assert_eq!(validate(&schema(), &v), Ok(()));
        assert_eq!(parse_answer(" 42 ").unwrap(), json!(42));
    }

    #[test]
    fn the_first_violation_is_named_with_its_path() {
        let cases = [
            (
                json!({"product": "tea"}),
                "$: missing required property \"units\"",
            ),
            (
                json!({"product": "tea", "units": 1.5}),
                "$.units: expected integer, got number",
            ),
            (
                json!({"product": "tea", "units": -1}),
                "$.units: -1 is less than the minimum 0",
            ),
            (
                json!({"product": "tea", "units": 1, "x": 1}),
                "$: property \"x\" is not allowed",
            ),
            (
                json!({"product": "tea", "units": 1, "tags": ["old"]}),
                "$.tags[0]: \"old\" is not one of [\"new\",\"sale\"]",
            ),
            (json!([1]), "$: expected object, got array"),
        ];
        for (value, expected) in cases {
            assert_eq!(
                validate(&schema(), &value),
                Err(expected.to_owned()),
                "{value}"
            );
        }
        assert!(parse_answer("The answer is 42")
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn any_of_needs_one_match() {
        let s = json!({"anyOf": [{"type": "string"}, {"type": "integer"}]});
        assert_eq!(validate(&s, &json!(3)), Ok(()));
        assert!(validate(&s, &json!(true)).unwrap_err().contains("none of"));
    }
}
