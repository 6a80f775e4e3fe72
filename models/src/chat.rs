//! Chat templates: the model's own prompt format, rendered as transformers'
//! `apply_chat_template(messages, add_generation_prompt=True, tokenize=False)` does, so a
//! score computed here can be reproduced in Python from the same directory.
//!
//! Why render the template rather than hard-code each family's format: instruct
//! checkpoints differ in system prompts and markers (and fine-tunes change them), and
//! the first-token readout is sensitive to every token before the answer position.
//!
//! What transformers does, and what is mirrored here:
//! * the template is Jinja2 with `trim_blocks` and `lstrip_blocks` on, `loopcontrols`
//!   enabled, `raise_exception(msg)` and `strftime_now(fmt)` as globals and a `tojson`
//!   filter that keeps non-ASCII text;
//! * the variables are `messages`, `add_generation_prompt`, and the tokenizer's special
//!   tokens by name (`bos_token`, `eos_token`, `unk_token`, `pad_token`, …) as strings;
//! * the template is found in `chat_template.jinja`, else `chat_template.json`, else
//!   `tokenizer_config.json`'s `chat_template` (a string, or a list of named templates of
//!   which `default` is used).
//!
//! Python string methods some templates call (`.strip()`, `.startswith()`, …) come from
//! minijinja-contrib's `pycompat`.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Errors of finding or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// A template file could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// File that failed.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The template failed to compile or render.
    #[error("chat template: {0}")]
    Render(String),
}

/// A compiled-on-demand chat template with the tokenizer's special tokens.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    special_tokens: serde_json::Map<String, Value>,
    origin: String,
}

/// Keys of tokenizer_config.json that transformers passes to the template as strings.
const SPECIAL_KEYS: [&str; 8] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
    "audio_token",
];

impl ChatTemplate {
    /// A template from its source, with no special tokens defined.
    pub fn new(source: impl Into<String>, origin: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            special_tokens: serde_json::Map::new(),
            origin: origin.into(),
        }
    }

    /// The model directory's chat template, or `None` when it has none. Special tokens
    /// come from `tokenizer_config.json` when present.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>, ChatError> {
        let config_path = dir.join("tokenizer_config.json");
        let config = if config_path.is_file() {
            Some(read_json_value(&config_path)?)
        } else {
            None
        };
        let jinja = dir.join("chat_template.jinja");
        let json_file = dir.join("chat_template.json");
        let (source, origin) = if jinja.is_file() {
            let text = std::fs::read_to_string(&jinja).map_err(|e| ChatError::File {
                path: jinja.clone(),
                message: e.to_string(),
            })?;
            (text, jinja)
        } else if json_file.is_file() {
            let v = read_json_value(&json_file)?;
            match template_field(&v, &json_file)? {
                Some(t) => (t, json_file),
                None => return Ok(None),
            }
        } else if let Some(v) = &config {
            match template_field(v, &config_path)? {
                Some(t) => (t, config_path),
                None => return Ok(None),
            }
        } else {
            return Ok(None);
        };
        let mut template = Self::new(source, origin.display().to_string());
        if let Some(config) = &config {
            template = template.with_special_tokens(config);
        }
        Ok(Some(template))
    }

    /// Takes the special token strings (`bos_token`, …) from a tokenizer_config.json
    /// value; each may be a string or an `AddedToken` object with `content`.
    pub fn with_special_tokens(mut self, tokenizer_config: &Value) -> Self {
        for key in SPECIAL_KEYS {
            let text = match tokenizer_config.get(key) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Object(o)) => {
                    o.get("content").and_then(Value::as_str).map(String::from)
                }
                _ => None,
            };
            if let Some(text) = text {
                self.special_tokens
                    .insert(key.to_string(), Value::String(text));
            }
        }
        self
    }

    /// Where the template came from (a file path, or `built-in …`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Renders `messages` (a list of `{role, content}`) as transformers does. Map keys
    /// are seen in the order `messages` serialises them (a `serde_json::Value` without
    /// serde_json's `preserve_order` sorts them; deserialise JSON into
    /// [`minijinja::Value`] to keep the file's order).
    pub fn render<M: serde::Serialize + ?Sized>(
        &self,
        messages: &M,
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("template raised: {msg}"),
                ))
            },
        );
        env.add_function("strftime_now", |_fmt: String| -> String {
            // Only used by templates that print today's date; a fixed value keeps
            // scores reproducible (transformers prints the real date).
            String::new()
        });
        env.add_filter("tojson", tojson);
        env.add_template("chat", &self.source)
            .map_err(|e| ChatError::Render(format!("{} does not compile: {e:#}", self.origin)))?;
        let template = env
            .get_template("chat")
            .map_err(|e| ChatError::Render(e.to_string()))?;
        let mut ctx: Vec<(String, minijinja::Value)> = self
            .special_tokens
            .iter()
            .map(|(k, v)| (k.clone(), minijinja::Value::from_serialize(v)))
            .collect();
        ctx.push((
            "messages".into(),
            minijinja::Value::from_serialize(messages),
        ));
        ctx.push((
            "add_generation_prompt".into(),
            minijinja::Value::from(add_generation_prompt),
        ));
        template
            .render(minijinja::Value::from_iter(ctx))
            .map_err(|e| ChatError::Render(format!("{}: {e:#}", self.origin)))
    }

    /// The generation prompt for one user turn whose content is the audio, then
    /// `question`: `[{"role": "user", "content": [{"type": "audio"}, {"type": "text",
    /// "text": question}]}]` with `add_generation_prompt=True`.
    pub fn render_audio_question(&self, question: &str) -> Result<String, ChatError> {
        self.render(&audio_question_messages(question), true)
    }
}

/// The conversation emomon asks: one user turn, audio first, then the question (keys
/// in the order a Python caller writes them).
pub fn audio_question_messages(question: &str) -> minijinja::Value {
    use minijinja::Value as V;
    let item =
        |pairs: Vec<(&str, V)>| V::from_iter(pairs.into_iter().map(|(k, v)| (k.to_string(), v)));
    V::from(vec![item(vec![
        ("role", V::from("user")),
        (
            "content",
            V::from(vec![
                item(vec![("type", V::from("audio"))]),
                item(vec![("type", V::from("text")), ("text", V::from(question))]),
            ]),
        ),
    ])])
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent)`, keys in
/// insertion order (Python dicts), separators `", "` and `": "` when not indented.
fn tojson(value: minijinja::Value, indent: Option<usize>) -> Result<String, minijinja::Error> {
    let mut out = String::new();
    write_json(&value, indent, 0, &mut out)?;
    Ok(out)
}

fn write_json(
    v: &minijinja::Value,
    indent: Option<usize>,
    depth: usize,
    out: &mut String,
) -> Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<minijinja::Value> = v.try_iter()?.collect();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                write_json(item, indent, depth + 1, out)?;
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<minijinja::Value> = v.try_iter()?.collect();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                let k = key.as_str().map_or_else(|| key.to_string(), str::to_string);
                out.push_str(&Value::String(k).to_string());
                out.push_str(": ");
                write_json(&v.get_item(key)?, indent, depth + 1, out)?;
            }
            if !keys.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        _ => out.push_str(&serde_json::to_string(v).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
        })?),
    }
    Ok(())
}

fn read_json_value(path: &Path) -> Result<Value, ChatError> {
    let text = std::fs::read_to_string(path).map_err(|e| ChatError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| ChatError::File {
        path: path.to_path_buf(),
        message: format!("invalid JSON: {e}"),
    })
}

/// `chat_template` of a config: a string, or a list of `{name, template}` (→ `default`).
fn template_field(v: &Value, path: &Path) -> Result<Option<String>, ChatError> {
    match v.get("chat_template") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(list)) => {
            let found = list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"));
            match found
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
            {
                Some(s) => Ok(Some(s.to_string())),
                None => Err(ChatError::File {
                    path: path.to_path_buf(),
                    message: "chat_template is a list without a `default` template".into(),
                }),
            }
        }
        Some(_) => Err(ChatError::File {
            path: path.to_path_buf(),
            message: "chat_template is neither a string nor a list".into(),
        }),
    }
}

/// Qwen2-Audio's chat template as transformers ships it (`Qwen2AudioProcessor.
/// default_chat_template`, identical to the Qwen2-Audio-7B-Instruct hub config): used
/// when a Qwen2-Audio directory has no template of its own.
pub const QWEN2_AUDIO_TEMPLATE: &str = concat!(
    "{% set audio_count = namespace(value=0) %}",
    "{% for message in messages %}",
    "{% if loop.first and message['role'] != 'system' %}",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
    "{% endif %}",
    "<|im_start|>{{ message['role'] }}\n",
    "{% if message['content'] is string %}",
    "{{ message['content'] }}<|im_end|>\n",
    "{% else %}",
    "{% for content in message['content'] %}",
    "{% if 'audio' in content or 'audio_url' in content or message['type'] == 'audio' or content['type'] == 'audio' %}",
    "{% set audio_count.value = audio_count.value + 1 %}",
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n",
    "{% elif 'text' in content %}",
    "{{ content['text'] }}",
    "{% endif %}",
    "{% endfor %}",
    "<|im_end|>\n",
    "{% endif %}",
    "{% endfor %}",
    "{% if add_generation_prompt %}",
    "<|im_start|>assistant\n",
    "{% endif %}",
);

/// Voxtral checkpoints ship no Jinja template (transformers formats Voxtral prompts
/// with mistral-common's tokenizer); this mirrors mistral-common's instruct layout for
/// one audio chunk and a question: `<s>[INST][BEGIN_AUDIO][AUDIO]…question[/INST]`
/// (checked id for id against mistral-common in `models/tests/parity/tekken_fixtures.rs`).
/// Used only when the directory has no template of its own. Such directories usually
/// have no tokenizer_config.json either, hence tekken's `<s>` when no `bos_token` is set.
pub const VOXTRAL_TEMPLATE: &str = concat!(
    "{{ bos_token if bos_token is defined else '<s>' }}",
    "{% for message in messages %}",
    "{% if message['role'] == 'user' %}",
    "[INST]",
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}",
    "{% for content in message['content'] %}",
    "{% if content['type'] == 'audio' %}[BEGIN_AUDIO][AUDIO]",
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}",
    "{% endfor %}{% endif %}",
    "[/INST]",
    "{% else %}{{ message['content'] }}{{ eos_token }}{% endif %}",
    "{% endfor %}",
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn qwen2_audio_default_template_renders_the_reference_layout() {
        let t = ChatTemplate::new(QWEN2_AUDIO_TEMPLATE, "built-in");
        let text = t.render_audio_question("Which emotion?").expect("render");
        assert_eq!(
            text,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n\
             Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nWhich emotion?<|im_end|>\n\
             <|im_start|>assistant\n"
        );
    }

    #[test]
    fn raise_exception_and_bad_templates_are_errors() {
        let t = ChatTemplate::new("{{ raise_exception('no audio here') }}", "test");
        let err = t.render(&json!([]), true).expect_err("raises");
        assert!(err.to_string().contains("no audio here"), "{err}");
        let t = ChatTemplate::new("{% for %}", "test");
        assert!(t.render(&json!([]), true).is_err());
    }

    #[test]
    fn tojson_uses_python_separators() {
        let t = ChatTemplate::new("{{ messages | tojson }}", "test");
        let out = t
            .render(&json!([{"a": 1, "b": "é"}]), false)
            .expect("render");
        assert_eq!(out, "[{\"a\": 1, \"b\": \"é\"}]");
    }
}
