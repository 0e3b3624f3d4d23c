//! Prompt and query templates: minijinja (Jinja2 syntax, as Chatter's prompt templates), which
//! runs sandboxed (no file or environment access; only the values handed in). Templates are
//! checked at validation and rendered by the executor with the run's inputs and variables.
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// One environment for the process: building one (filters, tests, globals) costs more than
/// rendering a short prompt.
fn environment() -> &'static Environment<'static> {
    static ENV: std::sync::LazyLock<Environment<'static>> = std::sync::LazyLock::new(build);
    &ENV
}

fn build() -> Environment<'static> {
    let mut env = Environment::new();
    // A misspelt variable renders as nothing rather than failing a run mid-way; `| default`
    // and `is defined` work as in Jinja.
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    // Loops in a template cannot run away with a worker.
    env.set_fuel(Some(100_000));
    env
}

/// Whether `source` is a well-formed template (the error says what and on which line).
pub fn check(source: &str) -> Result<(), String> {
    let env = environment();
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| describe(&e))
}

/// Render `source` with `context`.
pub fn render<C: Serialize>(source: &str, context: &C) -> Result<String, String> {
    let env = environment();
    let t = env.template_from_str(source).map_err(|e| describe(&e))?;
    t.render(context).map_err(|e| describe(&e))
}

fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!(
            "{} (line {line})",
            e.detail().unwrap_or(&e.kind().to_string())
        ),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_renders() {
        assert!(check("Hello {{ input.name }}").is_ok());
        let e = check("Hello {{ input.name ").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let out = render(
            "{{ input.q }} / {{ missing }}",
            &serde_json::json!({"input": {"q": "why"}}),
        )
        .unwrap();
        assert_eq!(out, "why / ");
        // A runaway loop runs out of fuel instead of holding the worker.
        assert!(
            render(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
                &()
            )
            .is_err()
        );
    }
}
