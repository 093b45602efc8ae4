//! Reading tensors from a memory-mapped `model.safetensors` into f32 vectors.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::ModelError;

pub struct Weights {
    path: PathBuf,
    mmap: memmap2::Mmap,
}

impl Weights {
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let file = std::fs::File::open(path).map_err(ModelError::io(path))?;
        // SAFETY: the file is opened read-only and ferret never writes model files while a model
        // is loaded; the map is only read.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(ModelError::io(path))?;
        SafeTensors::deserialize(&mmap)
            .map_err(|e| ModelError::invalid(path, format!("not a valid safetensors file: {e}")))?;
        Ok(Weights {
            path: path.to_path_buf(),
            mmap,
        })
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.mmap).expect("validated in open")
    }

    /// Every tensor's name and shape.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.tensors()
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.shape().to_vec()))
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors().tensor(name).is_ok()
    }

    /// The tensor `name` as f32 (f32, f16 and bf16 are read), checking its shape.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let st = self.tensors();
        let t = st
            .tensor(name)
            .map_err(|_| ModelError::invalid(&self.path, format!("missing tensor '{name}'")))?;
        if t.shape() != shape {
            return Err(ModelError::invalid(
                &self.path,
                format!(
                    "tensor '{name}' has shape {:?}, the config implies {shape:?}",
                    t.shape()
                ),
            ));
        }
        let data = t.data();
        let out = match t.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            other => {
                return Err(ModelError::invalid(
                    &self.path,
                    format!("tensor '{name}' has unsupported dtype {other:?}"),
                ))
            }
        };
        Ok(out)
    }
}

/// IEEE half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // subnormal: normalise
            let shift = f.leading_zeros() - 21;
            let f = (f << shift) & 0x3ff;
            sign | ((113 - shift) << 23) | (f << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    #[test]
    fn half_precision_values() {
        assert_eq!(super::f16_to_f32(0x3c00), 1.0);
        assert_eq!(super::f16_to_f32(0xc000), -2.0);
        assert_eq!(super::f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(super::f16_to_f32(0x7bff), 65504.0);
    }
}
