//! A GGUF file's header read and checked against the file: shared by the GGUF encoders, the
//! LLM runtime and the model fetcher. candle parses the header; this names what it refuses and
//! what it would only find out later (a file cut short).

use std::path::Path;

use candle_core::quantized::gguf_file::Content;

use crate::ModelError;

/// ggml's names of the tensor types candle's reader does not know (ggml.h, `ggml_type`).
const OTHER_TYPES: &[(u32, &str)] = &[
    (16, "IQ2_XXS"),
    (17, "IQ2_XS"),
    (18, "IQ3_XXS"),
    (19, "IQ1_S"),
    (20, "IQ4_NL"),
    (21, "IQ3_S"),
    (22, "IQ2_S"),
    (23, "IQ4_XS"),
    (24, "I8"),
    (25, "I16"),
    (26, "I32"),
    (27, "I64"),
    (28, "F64"),
    (29, "IQ1_M"),
    (34, "TQ1_0"),
    (35, "TQ2_0"),
    (39, "MXFP4"),
];

/// The header of the GGUF at `path`, the file positioned after it, and the file's length.
/// Refuses a file that is not a GGUF, one with a tensor type candle cannot read (named), and
/// one shorter than its tensor table says (truncated).
pub(crate) fn read(path: &Path) -> Result<(Content, std::fs::File), ModelError> {
    let bad = |m: String| ModelError::invalid(path, m);
    let mut file = std::fs::File::open(path).map_err(ModelError::io(path))?;
    let content = Content::read(&mut file).map_err(|e| {
        let e = e.to_string();
        match e.strip_prefix("unknown dtype for tensor ") {
            Some(rest) => {
                // candle's message may go on (a backtrace) after the number.
                let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let name = n
                    .parse::<u32>()
                    .ok()
                    .and_then(|n| OTHER_TYPES.iter().find(|(t, _)| *t == n))
                    .map_or("unknown", |(_, name)| name);
                bad(format!(
                    "a tensor has GGUF type {name} (ggml type {}), which ferret does not read \
                     (it reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q2_K to Q8_K)",
                    n
                ))
            }
            None => bad(format!("not a readable GGUF file: {e}")),
        }
    })?;
    let len = file.metadata().map_err(ModelError::io(path))?.len();
    let end = tensor_end(&content).ok_or_else(|| {
        bad("its tensor table is corrupt: a tensor's size or offset overflows 64 bits".into())
    })?;
    if len < end {
        return Err(bad(format!(
            "truncated: its tensor table needs {end} bytes, the file has {len}"
        )));
    }
    Ok((content, file))
}

/// Where the last tensor's data ends, by the tensor table; `None` when a corrupt table's
/// sizes or offsets overflow (checked: the dimensions come straight from the file).
pub(crate) fn tensor_end(content: &Content) -> Option<u64> {
    let mut end = content.tensor_data_offset;
    for t in content.tensor_infos.values() {
        let elems = t
            .shape
            .dims()
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))?;
        let bytes = (elems / t.ggml_dtype.block_size() as u64)
            .checked_mul(t.ggml_dtype.type_size() as u64)?;
        let t_end = content
            .tensor_data_offset
            .checked_add(t.offset)?
            .checked_add(bytes)?;
        end = end.max(t_end);
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};

    fn small_gguf(path: &Path) {
        let t =
            candle_core::Tensor::zeros((4, 32), candle_core::DType::F32, &candle_core::Device::Cpu);
        let q = QTensor::quantize(&t.unwrap(), GgmlDType::Q8_0).unwrap();
        let arch = gguf_file::Value::String("tiny".into());
        let mut f = std::fs::File::create(path).unwrap();
        gguf_file::write(&mut f, &[("general.architecture", &arch)], &[("w", &q)]).unwrap();
    }

    #[test]
    fn unreadable_types_and_cut_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.gguf");
        small_gguf(&ok);
        let (content, _) = read(&ok).unwrap();
        let len = std::fs::metadata(&ok).unwrap().len();
        let end = tensor_end(&content).unwrap();
        assert!(end <= len && len - end < 32);

        // Writes `bytes` as `name` and returns read's error, which must name the file.
        let refused = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let e = read(&path).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
            e
        };
        let bytes = std::fs::read(&ok).unwrap();
        let e = refused("cut.gguf", &bytes[..bytes.len() - 40]);
        assert!(e.contains("truncated"), "{e}");

        // The tensor's type field (ggml type 8, Q8_0, the u32 just before its u64 offset, 0)
        // set to 20: IQ4_NL.
        let at = bytes
            .windows(12)
            .position(|w| w == [8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            .unwrap();
        let mut iq = bytes.clone();
        iq[at] = 20;
        let e = refused("iq.gguf", &iq);
        assert!(e.contains("type IQ4_NL (ggml type 20)"), "{e}");

        // The tensor's dimensions (n_dims 2, then 32 and 4 as u64) multiplied by 2^40 each:
        // their product overflows 64 bits.
        let dims = [2, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0];
        let at = bytes.windows(20).position(|w| w == dims).unwrap();
        let mut huge = bytes.clone();
        huge[at + 4 + 5] = 1;
        huge[at + 12 + 5] = 1;
        let e = refused("huge.gguf", &huge);
        assert!(e.contains("overflows 64 bits"), "{e}");

        let e = refused("not.gguf", b"GGUF but not really");
        assert!(e.contains("not a readable GGUF file"), "{e}");
    }
}
