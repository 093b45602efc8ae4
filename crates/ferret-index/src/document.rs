use serde::{Deserialize, Serialize};

/// A document as ferret stores it: external id, title, text, optional image and metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metadata: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<DocImage>,
}

/// A document's image: where it is and what it is (filled in when the writer decodes it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocImage {
    /// Absolute path (a corpus's relative path resolved against the corpus file's folder).
    pub path: String,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
    /// `jpeg`, `png`, `webp` or `gif`.
    #[serde(default)]
    pub format: String,
}

impl Document {
    /// Title and text as one string, the Pyserini "flat" contents.
    pub fn contents(&self) -> String {
        if self.title.is_empty() {
            self.text.clone()
        } else {
            format!("{}\n{}", self.title, self.text)
        }
    }
}
