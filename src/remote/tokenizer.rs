//! The served model's tokenizer through vLLM's `/tokenize` and `/detokenize`, for users
//! who score remotely without a copy of the model directory: the label tokens must be
//! the server's, or the log-probabilities read would belong to other tokens.

use std::sync::Arc;

use emomon_models::tokenizer::{TokenText, TokenizerError};
use serde::Deserialize;
use serde_json::json;

use super::client::Client;

/// [`TokenText`] over a server's tokenizer endpoints.
pub struct RemoteTokenizer {
    client: Arc<Client>,
    model: String,
}

#[derive(Deserialize)]
struct Tokens {
    tokens: Vec<u32>,
}

#[derive(Deserialize)]
struct Text {
    prompt: String,
}

impl RemoteTokenizer {
    /// The tokenizer of `model` on `client`'s server.
    pub fn new(client: Arc<Client>, model: &str) -> Self {
        Self {
            client,
            model: model.to_string(),
        }
    }

    fn call<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
        input: String,
    ) -> Result<T, TokenizerError> {
        let err = |message: String| TokenizerError::Encode {
            input: input.clone(),
            message,
        };
        let url = format!("{}{path}", self.client.root());
        let bytes = self
            .client
            .post_json(&url, &body)
            .map_err(|e| err(format!("{url}: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| err(format!("{url}: unexpected answer: {e}")))
    }
}

impl TokenText for RemoteTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let body = json!({"model": self.model, "prompt": text, "add_special_tokens": false});
        Ok(self
            .call::<Tokens>("/tokenize", body, text.to_string())?
            .tokens)
    }

    fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let body = json!({"model": self.model, "tokens": ids});
        Ok(self
            .call::<Text>("/detokenize", body, format!("{ids:?}"))?
            .prompt)
    }
}
