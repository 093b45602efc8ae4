//! LLM answers cached by prompt hash: `$FERRET_HOME/llm-cache/<model>.jsonl`, one
//! `{"key", "response"}` line per answer, appended as answers arrive and loaded on open. The key
//! is the sha256 of the backend's id and the whole request (messages, max_tokens, choices), so a
//! rerun of the same pipeline costs no model calls, and any change to a prompt misses.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{LlmRequest, LlmResponse};
use crate::ModelError;

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    response: LlmResponse,
}

pub struct PromptCache {
    path: PathBuf,
    state: Mutex<(HashMap<String, LlmResponse>, Option<std::fs::File>)>,
}

pub fn key(backend: &str, request: &LlmRequest) -> String {
    let mut h = Sha256::new();
    h.update(backend.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(request).expect("a request serialises"));
    crate::source::hex(&h.finalize())
}

impl PromptCache {
    /// The cache file of one backend, under `$FERRET_HOME/llm-cache`.
    pub fn open(backend: &str) -> Result<Self, ModelError> {
        let home = crate::source::cache_dir()?;
        let dir = home.parent().unwrap_or(&home).join("llm-cache");
        let name = crate::source::hex(&Sha256::digest(backend.as_bytes()));
        Self::open_file(&dir.join(format!("{}.jsonl", &name[..24])))
    }

    pub fn open_file(path: &Path) -> Result<Self, ModelError> {
        let mut entries = HashMap::new();
        if path.exists() {
            let f = std::fs::File::open(path).map_err(ModelError::io(path))?;
            for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
                let line = line.map_err(ModelError::io(path))?;
                match serde_json::from_str::<Entry>(&line) {
                    Ok(e) => {
                        entries.insert(e.key, e.response);
                    }
                    // A line cut short by a killed run: that answer is simply asked again.
                    Err(e) => tracing::warn!(
                        "{}:{}: unreadable cache entry ignored ({e})",
                        path.display(),
                        n + 1
                    ),
                }
            }
        }
        Ok(PromptCache {
            path: path.to_path_buf(),
            state: Mutex::new((entries, None)),
        })
    }

    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &str) -> Option<LlmResponse> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .get(key)
            .cloned()
    }

    pub fn put(&self, key: &str, response: &LlmResponse) -> Result<(), ModelError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.1.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(ModelError::io(dir))?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(ModelError::io(&self.path))?;
            state.1 = Some(f);
            // After a torn last line, start on a fresh one.
            if !ends_with_newline(&self.path).map_err(ModelError::io(&self.path))? {
                let file = state.1.as_mut().expect("just opened");
                file.write_all(b"\n").map_err(ModelError::io(&self.path))?;
            }
        }
        let mut line = serde_json::to_vec(&Entry {
            key: key.to_string(),
            response: response.clone(),
        })
        .expect("an entry serialises");
        line.push(b'\n');
        let file = state.1.as_mut().expect("opened above");
        file.write_all(&line).map_err(ModelError::io(&self.path))?;
        state.0.insert(key.to_string(), response.clone());
        Ok(())
    }
}

/// True for an empty file or one whose last byte is a newline.
fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::super::Message;
    use super::*;

    fn request(q: &str) -> LlmRequest {
        LlmRequest {
            messages: vec![Message::user(q)],
            max_tokens: 4,
            choices: vec!["Yes".into(), "No".into()],
        }
    }

    #[test]
    fn answers_survive_a_reopen_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let response = LlmResponse {
            text: "Yes".into(),
            choice_logprobs: Some(vec![-0.1, -2.3]),
            prompt_tokens: 12,
            completion_tokens: 1,
            reused_prompt_tokens: 0,
        };
        let k = key("m", &request("a"));
        assert_ne!(k, key("m", &request("b")));
        assert_ne!(k, key("other model", &request("a")));
        {
            let c = PromptCache::open_file(&path).unwrap();
            assert!(c.get(&k).is_none());
            c.put(&k, &response).unwrap();
        }
        // A run killed while writing leaves half a line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"key\":\"abc\",\"resp").unwrap();
        let c = PromptCache::open_file(&path).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&k), Some(response.clone()));
        let k2 = key("m", &request("b"));
        c.put(&k2, &response).unwrap();
        let c = PromptCache::open_file(&path).unwrap();
        assert_eq!(
            c.len(),
            2,
            "an answer written after the torn line is readable"
        );
    }
}
