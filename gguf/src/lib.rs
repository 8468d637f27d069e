//! GGUF, llama.cpp's one-file model format: a header (metadata and tensor descriptions) and the
//! tensors' bytes, many in block quantisations.
//!
//! Like every parser here, the header is checked before anything is allocated from it: counts,
//! string and array lengths against the bytes the file has left, tensor ranks, shapes, types,
//! block alignment, offsets within the file and not overlapping. Hand-written (about the size of a
//! crate's) because the well-kept readers come inside whole ML frameworks (candle-core, ggml's
//! Python package): this one reads a header from byte ranges, so a browser never holds the file.
//! Its own crate so that debug builds (tests, the debug bundle) still build it optimised:
//! `matrix` multiplies by quantised weights token after token.

pub mod matrix;

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use half::{bf16, f16};

/// The format's magic bytes.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// The largest header read (metadata with a 150k-token vocabulary is ~10 MB).
pub const MAX_HEADER_BYTES: u64 = 64 << 20;
const MAX_TENSORS: u64 = 1 << 16;
const MAX_METADATA: u64 = 1 << 16;
const MAX_NAME_BYTES: u64 = 1024;
const MAX_STRING_BYTES: u64 = 16 << 20;
/// Elements in all arrays together (vocabularies and merges of a few hundred thousand).
const MAX_ARRAY_ELEMENTS: u64 = 1 << 24;
const MAX_DIMENSIONS: u32 = 4;
const MAX_ELEMENTS: u64 = 1 << 36;
const DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    /// u64 values above `i64::MAX` stay apart rather than wrap.
    BigUint(u64),
    Float(f64),
    Bool(bool),
    String(String),
    Array(Array),
}

/// A metadata array, kept in a type close to its elements' (a vocabulary is 150k strings).
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Bools(Vec<bool>),
    Strings(Vec<String>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(value) => u64::try_from(*value).ok(),
            Value::BigUint(value) => Some(*value),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(value) => Some(*value),
            Value::Int(value) => Some(*value as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(value) => Some(value),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(value) => Some(*value),
            _ => None,
        }
    }

    pub fn as_strings(&self) -> Option<&[String]> {
        match self {
            Value::Array(Array::Strings(values)) => Some(values),
            _ => None,
        }
    }

    pub fn as_ints(&self) -> Option<&[i64]> {
        match self {
            Value::Array(Array::Ints(values)) => Some(values),
            _ => None,
        }
    }
}

/// The tensor types read here (ggml's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q8_0,
    Q4K,
    Q6K,
}

impl TensorType {
    fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            12 => Self::Q4K,
            14 => Self::Q6K,
            30 => Self::BF16,
            _ => return None,
        })
    }

    /// ggml's names for the types this engine does not read, for the error message.
    fn other_name(id: u32) -> &'static str {
        match id {
            6 => "Q5_0",
            7 => "Q5_1",
            9 => "Q8_1",
            10 => "Q2_K",
            11 => "Q3_K",
            13 => "Q5_K",
            15 => "Q8_K",
            16..=23 | 29 => "an IQ quantisation",
            _ => "an unknown type",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q8_0 => "Q8_0",
            Self::Q4K => "Q4_K",
            Self::Q6K => "Q6_K",
        }
    }

    /// (elements, bytes) of one block.
    pub fn block(self) -> (u64, u64) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q8_0 => (32, 34),
            Self::Q4K => (256, 144),
            Self::Q6K => (256, 210),
        }
    }
}

/// One tensor's description. `shape` is in ggml's order: the first dimension is the contiguous
/// one (a PyTorch `[out, in]` weight is `[in, out]` here).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: TensorType,
    /// Bytes from the start of the file.
    pub range: Range<u64>,
}

impl TensorInfo {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// The shape as PyTorch writes it (slowest dimension first).
    pub fn torch_shape(&self) -> Vec<usize> {
        self.shape.iter().rev().copied().collect()
    }
}

/// A GGUF header, checked.
#[derive(Clone, Debug)]
pub struct Gguf {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
}

/// Why a header could not be read from the bytes at hand.
#[derive(Debug, PartialEq)]
pub enum HeaderProblem {
    /// The header goes on past these bytes: read more of the file (the file has them).
    NeedMore,
    /// The file is not a GGUF this engine reads; in plain words.
    Invalid(String),
}

impl Gguf {
    /// Parses the header from the file's first bytes; `file_size` is the whole file's size.
    pub fn parse(bytes: &[u8], file_size: u64) -> Result<Self, HeaderProblem> {
        let mut reader = Reader {
            bytes,
            position: 0,
            file_size,
            array_elements: 0,
        };
        let magic = reader.take(4)?;
        if magic != MAGIC {
            return Err(invalid(
                "is not a GGUF file (it does not start with \"GGUF\")",
            ));
        }
        let version = reader.u32()?;
        if !(2..=3).contains(&version) {
            return Err(invalid(format!(
                "is GGUF version {version}; this engine reads versions 2 and 3"
            )));
        }
        let tensor_count = reader.u64()?;
        let metadata_count = reader.u64()?;
        if tensor_count > MAX_TENSORS {
            return Err(invalid(format!(
                "says it holds {tensor_count} tensors (at most {MAX_TENSORS})"
            )));
        }
        if metadata_count > MAX_METADATA {
            return Err(invalid(format!(
                "says it holds {metadata_count} metadata entries (at most {MAX_METADATA})"
            )));
        }
        let mut metadata = BTreeMap::new();
        for _ in 0..metadata_count {
            let key = reader.string("a metadata key", MAX_NAME_BYTES)?;
            let kind = reader.u32()?;
            let value = reader.value(kind, &key)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(invalid(format!("has the metadata key `{key}` twice")));
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(value) => match value.as_u64() {
                Some(alignment) if alignment.is_power_of_two() && alignment <= 1 << 20 => alignment,
                _ => {
                    return Err(invalid(
                        "has a `general.alignment` that is not a power of two up to 1 MiB",
                    ));
                }
            },
        };
        let mut described = Vec::with_capacity(tensor_count as usize);
        for _ in 0..tensor_count {
            let name = reader.string("a tensor name", MAX_NAME_BYTES)?;
            let rank = reader.u32()?;
            if rank == 0 || rank > MAX_DIMENSIONS {
                return Err(invalid(format!(
                    "gives tensor `{name}` {rank} dimensions (1 to {MAX_DIMENSIONS})"
                )));
            }
            let mut shape = Vec::with_capacity(rank as usize);
            for _ in 0..rank {
                shape.push(reader.u64()?);
            }
            let type_id = reader.u32()?;
            let offset = reader.u64()?;
            described.push((name, shape, type_id, offset));
        }
        let data_start = reader.position.div_ceil(alignment) * alignment;
        let mut names = HashSet::new();
        let mut tensors = Vec::with_capacity(described.len());
        for (name, shape, type_id, offset) in described {
            if !names.insert(name.clone()) {
                return Err(invalid(format!("has the tensor `{name}` twice")));
            }
            let elements = shape
                .iter()
                .try_fold(1u64, |product, &dimension| {
                    (dimension > 0)
                        .then(|| product.checked_mul(dimension))
                        .flatten()
                })
                .filter(|&elements| elements <= MAX_ELEMENTS)
                .ok_or_else(|| {
                    invalid(format!(
                        "gives tensor `{name}` the shape {shape:?}, which is empty or too large"
                    ))
                })?;
            let kind = TensorType::from_id(type_id).ok_or_else(|| {
                invalid(format!(
                    "stores tensor `{name}` as {} (type {type_id}); this engine reads F32, F16, \
                     BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K files",
                    TensorType::other_name(type_id)
                ))
            })?;
            let (block_elements, block_bytes) = kind.block();
            if shape[0] % block_elements != 0 {
                return Err(invalid(format!(
                    "stores tensor `{name}` in {} with rows of {} values, not whole blocks of {block_elements}",
                    kind.name(),
                    shape[0]
                )));
            }
            if offset % alignment != 0 {
                return Err(invalid(format!(
                    "places tensor `{name}` at offset {offset}, not a multiple of its alignment {alignment}"
                )));
            }
            let bytes = elements / block_elements * block_bytes;
            let range = data_start
                .checked_add(offset)
                .and_then(|start| Some(start..start.checked_add(bytes)?))
                .filter(|range| range.end <= file_size)
                .ok_or_else(|| {
                    invalid(format!(
                        "places tensor `{name}` past the end of the file (an incomplete download?)"
                    ))
                })?;
            tensors.push(TensorInfo {
                name,
                shape: shape.iter().map(|&dimension| dimension as usize).collect(),
                kind,
                range,
            });
        }
        let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
        by_offset.sort_by_key(|tensor| tensor.range.start);
        if let Some(pair) = by_offset
            .windows(2)
            .find(|pair| pair[1].range.start < pair[0].range.end)
        {
            return Err(invalid(format!(
                "lets tensors `{}` and `{}` overlap",
                pair[0].name, pair[1].name
            )));
        }
        Ok(Gguf {
            version,
            metadata,
            tensors,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|tensor| tensor.name == name)
    }
}

fn invalid(message: impl Into<String>) -> HeaderProblem {
    HeaderProblem::Invalid(message.into())
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: u64,
    file_size: u64,
    array_elements: u64,
}

impl<'a> Reader<'a> {
    /// The next `count` bytes; running past the bytes at hand asks for more, past the file (or
    /// the header's limit) is an error.
    fn take(&mut self, count: u64) -> Result<&'a [u8], HeaderProblem> {
        let end = self.position.saturating_add(count);
        if end > self.file_size {
            return Err(invalid(
                "ends inside its header (a truncated or damaged file?)",
            ));
        }
        if end > MAX_HEADER_BYTES {
            return Err(invalid(format!(
                "has a header larger than {} MiB",
                MAX_HEADER_BYTES >> 20
            )));
        }
        if end > self.bytes.len() as u64 {
            return Err(HeaderProblem::NeedMore);
        }
        let taken = &self.bytes[self.position as usize..end as usize];
        self.position = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], HeaderProblem> {
        Ok(self.take(N as u64)?.try_into().expect("took N bytes"))
    }

    fn u32(&mut self) -> Result<u32, HeaderProblem> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, HeaderProblem> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self, what: &str, limit: u64) -> Result<String, HeaderProblem> {
        let length = self.u64()?;
        if length > limit {
            return Err(invalid(format!(
                "has {what} of {length} bytes (at most {limit})"
            )));
        }
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| invalid(format!("has {what} that is not UTF-8 text")))
    }

    fn value(&mut self, kind: u32, key: &str) -> Result<Value, HeaderProblem> {
        Ok(match kind {
            0 => Value::Int(i64::from(self.array::<1>()?[0])),
            1 => Value::Int(i64::from(self.array::<1>()?[0] as i8)),
            2 => Value::Int(i64::from(u16::from_le_bytes(self.array()?))),
            3 => Value::Int(i64::from(i16::from_le_bytes(self.array()?))),
            4 => Value::Int(i64::from(self.u32()?)),
            5 => Value::Int(i64::from(i32::from_le_bytes(self.array()?))),
            6 => Value::Float(f64::from(f32::from_le_bytes(self.array()?))),
            7 => match self.array::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => return Err(invalid(format!("has a true/false `{key}` that is neither"))),
            },
            8 => Value::String(self.string(&format!("the value of `{key}`"), MAX_STRING_BYTES)?),
            9 => Value::Array(self.array_value(key)?),
            10 => {
                let value = self.u64()?;
                i64::try_from(value).map_or(Value::BigUint(value), Value::Int)
            }
            11 => Value::Int(i64::from_le_bytes(self.array()?)),
            12 => Value::Float(f64::from_le_bytes(self.array()?)),
            _ => {
                return Err(invalid(format!(
                    "gives `{key}` the unknown value type {kind}"
                )));
            }
        })
    }

    fn array_value(&mut self, key: &str) -> Result<Array, HeaderProblem> {
        let kind = self.u32()?;
        let count = self.u64()?;
        // Every element takes at least a byte (a string its 8-byte length): a count the file
        // cannot hold is refused before anything is allocated for it.
        let least = match kind {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 | 10..=12 => 8,
            9 => return Err(invalid(format!("nests arrays in `{key}`"))),
            _ => {
                return Err(invalid(format!(
                    "gives `{key}` an array of the unknown type {kind}"
                )));
            }
        };
        self.array_elements = self.array_elements.saturating_add(count);
        if self.array_elements > MAX_ARRAY_ELEMENTS
            || count.saturating_mul(least) > self.file_size.saturating_sub(self.position)
        {
            return Err(invalid(format!(
                "says `{key}` holds {count} values, more than the file can"
            )));
        }
        let capacity = count.min(1 << 16) as usize;
        Ok(match kind {
            6 | 12 => {
                let mut values = Vec::with_capacity(capacity);
                for _ in 0..count {
                    values.push(self.value(kind, key)?.as_f64().expect("a float"));
                }
                Array::Floats(values)
            }
            7 => {
                let mut values = Vec::with_capacity(capacity);
                for _ in 0..count {
                    values.push(self.value(kind, key)?.as_bool().expect("a bool"));
                }
                Array::Bools(values)
            }
            8 => {
                let mut values = Vec::with_capacity(capacity);
                for _ in 0..count {
                    values.push(self.string(&format!("an entry of `{key}`"), MAX_STRING_BYTES)?);
                }
                Array::Strings(values)
            }
            _ => {
                let mut values = Vec::with_capacity(capacity);
                for _ in 0..count {
                    values.push(match self.value(kind, key)? {
                        Value::Int(value) => value,
                        _ => {
                            return Err(invalid(format!(
                                "has a value in `{key}` beyond 64-bit integers"
                            )));
                        }
                    });
                }
                Array::Ints(values)
            }
        })
    }
}

/// `bytes` of a `kind` tensor (whole blocks) as f32 values, appended to `out`.
pub fn dequantize(kind: TensorType, bytes: &[u8], out: &mut Vec<f32>) {
    let (elements, block_bytes) = kind.block();
    debug_assert_eq!(bytes.len() as u64 % block_bytes, 0);
    out.reserve(bytes.len() / block_bytes as usize * elements as usize);
    let half = |at: &[u8]| f16::from_le_bytes([at[0], at[1]]).to_f32();
    for block in bytes.chunks_exact(block_bytes as usize) {
        match kind {
            TensorType::F32 => out.push(f32::from_le_bytes(block.try_into().expect("4 bytes"))),
            TensorType::F16 => out.push(half(block)),
            TensorType::BF16 => out.push(bf16::from_le_bytes([block[0], block[1]]).to_f32()),
            TensorType::Q8_0 => {
                let scale = half(block);
                out.extend(block[2..].iter().map(|&q| f32::from(q as i8) * scale));
            }
            TensorType::Q4_0 => {
                let scale = half(block);
                let values = &block[2..];
                out.extend(values.iter().map(|&q| (f32::from(q & 0xF) - 8.0) * scale));
                out.extend(values.iter().map(|&q| (f32::from(q >> 4) - 8.0) * scale));
            }
            TensorType::Q4_1 => {
                let (scale, least) = (half(block), half(&block[2..]));
                let values = &block[4..];
                out.extend(values.iter().map(|&q| f32::from(q & 0xF) * scale + least));
                out.extend(values.iter().map(|&q| f32::from(q >> 4) * scale + least));
            }
            TensorType::Q4K => dequantize_q4_k(block, out),
            TensorType::Q6K => dequantize_q6_k(block, out),
        }
    }
}

/// Q4_K: 256 values in 8 groups of 32, each with a 6-bit scale and minimum (packed in 12 bytes),
/// scaled by the block's f16 `d` and `dmin`.
fn dequantize_q4_k(block: &[u8], out: &mut Vec<f32>) {
    let scale = f16::from_le_bytes([block[0], block[1]]).to_f32();
    let least = f16::from_le_bytes([block[2], block[3]]).to_f32();
    let packed = &block[4..16];
    let values = &block[16..144];
    let group = |index: usize| -> (f32, f32) {
        let (factor, minimum) = if index < 4 {
            (packed[index] & 63, packed[index + 4] & 63)
        } else {
            (
                (packed[index + 4] & 0xF) | ((packed[index - 4] >> 6) << 4),
                (packed[index + 4] >> 4) | ((packed[index] >> 6) << 4),
            )
        };
        (scale * f32::from(factor), least * f32::from(minimum))
    };
    for (chunk, quarter) in values.chunks_exact(32).enumerate() {
        let (low_scale, low_min) = group(2 * chunk);
        let (high_scale, high_min) = group(2 * chunk + 1);
        out.extend(
            quarter
                .iter()
                .map(|&q| low_scale * f32::from(q & 0xF) - low_min),
        );
        out.extend(
            quarter
                .iter()
                .map(|&q| high_scale * f32::from(q >> 4) - high_min),
        );
    }
}

/// Q6_K: 256 six-bit values (low 4 bits in `ql`, high 2 in `qh`) in 16 groups with signed 8-bit
/// scales, times the block's f16 `d`.
fn dequantize_q6_k(block: &[u8], out: &mut Vec<f32>) {
    let (low, high, scales) = (&block[0..128], &block[128..192], &block[192..208]);
    let scale = f16::from_le_bytes([block[208], block[209]]).to_f32();
    let start = out.len();
    out.resize(start + 256, 0.0);
    let values = &mut out[start..];
    for half_block in 0..2 {
        let (low, high) = (&low[64 * half_block..], &high[32 * half_block..]);
        let scales = &scales[8 * half_block..];
        let values = &mut values[128 * half_block..];
        for l in 0..32 {
            let group = l / 16;
            let q = [
                (low[l] & 0xF) | ((high[l] & 3) << 4),
                (low[l + 32] & 0xF) | (((high[l] >> 2) & 3) << 4),
                (low[l] >> 4) | (((high[l] >> 4) & 3) << 4),
                (low[l + 32] >> 4) | (((high[l] >> 6) & 3) << 4),
            ];
            for (quarter, q) in q.into_iter().enumerate() {
                let factor = f32::from(scales[group + 2 * quarter] as i8);
                values[l + 32 * quarter] = scale * factor * (f32::from(q) - 32.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(tensors: &[(&str, &[u64], u32, u64)], metadata: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(3u32.to_le_bytes());
        bytes.extend((tensors.len() as u64).to_le_bytes());
        bytes.extend((metadata.len() as u64).to_le_bytes());
        let string = |bytes: &mut Vec<u8>, text: &str| {
            bytes.extend((text.len() as u64).to_le_bytes());
            bytes.extend(text.as_bytes());
        };
        for (key, kind, value) in metadata {
            string(&mut bytes, key);
            bytes.extend(kind.to_le_bytes());
            bytes.extend(value);
        }
        for (name, shape, kind, offset) in tensors {
            string(&mut bytes, name);
            bytes.extend((shape.len() as u32).to_le_bytes());
            for dimension in *shape {
                bytes.extend(dimension.to_le_bytes());
            }
            bytes.extend(kind.to_le_bytes());
            bytes.extend(offset.to_le_bytes());
        }
        bytes
    }

    fn problem(bytes: &[u8], size: u64) -> String {
        match Gguf::parse(bytes, size) {
            Err(HeaderProblem::Invalid(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_header_and_places_tensors_after_the_aligned_header() {
        let bytes = header(
            &[("a", &[32, 2], 8, 0), ("b", &[4], 0, 96)],
            &[(
                "general.architecture",
                8,
                [5u64.to_le_bytes().as_slice(), b"llama"].concat(),
            )],
        );
        let start = (bytes.len() as u64).div_ceil(32) * 32;
        let gguf = Gguf::parse(&bytes, start + 112).unwrap();
        assert_eq!(
            gguf.get("general.architecture").unwrap().as_str(),
            Some("llama")
        );
        assert_eq!(gguf.tensors[0].range, start..start + 68);
        assert_eq!(gguf.tensors[0].torch_shape(), vec![2, 32]);
        assert_eq!(gguf.tensors[1].range, start + 96..start + 112);
        // A header cut short asks for more of the file, or fails where the file ends.
        assert_eq!(
            Gguf::parse(&bytes[..20], start + 112).unwrap_err(),
            HeaderProblem::NeedMore
        );
        assert!(problem(&bytes[..20], 20).contains("ends inside its header"));
    }

    #[test]
    fn refuses_what_the_file_cannot_hold() {
        let size = 4096;
        assert!(problem(b"GGML\x03\0\0\0", size).contains("is not a GGUF"));
        let overlapping = header(&[("a", &[32], 0, 0), ("b", &[32], 0, 64)], &[]);
        assert!(problem(&overlapping, size).contains("overlap"));
        let partial_block = header(&[("a", &[30, 2], 2, 0)], &[]);
        assert!(problem(&partial_block, size).contains("whole blocks of 32"));
        let unknown = header(&[("a", &[256], 13, 0)], &[]);
        assert!(problem(&unknown, size).contains("Q5_K"));
        let past_end = header(&[("a", &[1024], 0, 0)], &[]);
        assert!(problem(&past_end, size).contains("past the end"));
        let huge_array = header(
            &[],
            &[(
                "tokens",
                9,
                [8u32.to_le_bytes().as_slice(), &u64::MAX.to_le_bytes()].concat(),
            )],
        );
        assert!(problem(&huge_array, size).contains("more than the file can"));
        let misaligned = header(&[("a", &[4], 0, 4)], &[]);
        assert!(problem(&misaligned, size).contains("alignment"));
    }

    #[test]
    fn dequantizes_the_block_formats() {
        let scale = f16::from_f32(0.5).to_le_bytes();
        let mut q8 = scale.to_vec();
        q8.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let mut out = Vec::new();
        dequantize(TensorType::Q8_0, &q8, &mut out);
        assert_eq!(out[0], -8.0);
        assert_eq!(out[31], 7.5);
        let mut q4 = scale.to_vec();
        q4.extend((0..16).map(|i| (i as u8) | (15 - i as u8) << 4));
        out.clear();
        dequantize(TensorType::Q4_0, &q4, &mut out);
        assert_eq!(&out[..2], &[-4.0, -3.5]);
        assert_eq!(&out[16..18], &[3.5, 3.0]);
        let mut q41 = scale.to_vec();
        q41.extend(f16::from_f32(1.0).to_le_bytes());
        q41.extend([0x21; 16]);
        out.clear();
        dequantize(TensorType::Q4_1, &q41, &mut out);
        assert_eq!((out[0], out[16]), (1.5, 2.0));
    }
}
