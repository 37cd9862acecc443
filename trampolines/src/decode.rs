//! Decoding a whole function's bytes into instructions with iced-x86.

use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction};
use thiserror::Error;

/// Why a function's bytes could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// No bytes were given.
    #[error("function at {entry:#x} has no bytes")]
    Empty { entry: u64 },
    /// The bytes at `at` are not a valid x86-64 instruction (or one runs past the end).
    #[error("undecodable instruction at {at:#x} (function {entry:#x})")]
    Invalid { entry: u64, at: u64 },
    /// `entry + len` overflows the address space.
    #[error("function at {entry:#x} with {len} bytes wraps the address space")]
    Wraps { entry: u64, len: usize },
}

/// A function decoded from its first byte to its end, instruction by instruction.
#[derive(Debug, Clone)]
pub struct DecodedFunction {
    entry: u64,
    end: u64,
    insns: Vec<Instruction>,
}

impl DecodedFunction {
    /// Decodes `code`, which holds the bytes of `[entry, entry + code.len())`.
    ///
    /// Every byte must belong to a valid instruction: a function whose tail cannot be decoded is
    /// refused as a whole rather than analysed in part.
    pub fn decode(code: &[u8], entry: u64) -> Result<Self, DecodeError> {
        if code.is_empty() {
            return Err(DecodeError::Empty { entry });
        }
        let end = entry
            .checked_add(code.len() as u64)
            .ok_or(DecodeError::Wraps {
                entry,
                len: code.len(),
            })?;
        let mut decoder = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
        let mut insns = Vec::with_capacity(code.len() / 4);
        let mut insn = Instruction::default();
        while decoder.can_decode() {
            decoder.decode_out(&mut insn);
            if insn.code() == Code::INVALID {
                return Err(DecodeError::Invalid {
                    entry,
                    at: insn.ip(),
                });
            }
            insns.push(insn);
        }
        Ok(Self { entry, end, insns })
    }

    /// The function's first address.
    pub fn entry(&self) -> u64 {
        self.entry
    }
    /// One past the function's last byte.
    pub fn end(&self) -> u64 {
        self.end
    }
    /// All instructions in address order.
    pub fn instructions(&self) -> &[Instruction] {
        &self.insns
    }
    /// Index of the instruction starting exactly at `ip`, if `ip` is an instruction boundary.
    pub fn index_at(&self, ip: u64) -> Option<usize> {
        self.insns.binary_search_by_key(&ip, |i| i.ip()).ok()
    }
    /// True when `ip` lies inside the function.
    pub fn contains(&self, ip: u64) -> bool {
        (self.entry..self.end).contains(&ip)
    }

    /// Every direct branch or call: (instruction address, target).
    pub fn direct_branches(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.insns.iter().filter_map(|i| match i.flow_control() {
            FlowControl::ConditionalBranch
            | FlowControl::UnconditionalBranch
            | FlowControl::Call => {
                let t = i.near_branch_target();
                (t != 0).then_some((i.ip(), t))
            }
            _ => None,
        })
    }

    /// A direct branch from anywhere in the function that lands strictly inside `(start, end)`.
    pub fn branch_into(&self, start: u64, end: u64) -> Option<(u64, u64)> {
        self.direct_branches().find(|&(_, t)| t > start && t < end)
    }

    /// Addresses of indirect jumps (Go jump tables or tail calls through a register).
    pub fn indirect_jumps(&self) -> impl Iterator<Item = u64> + '_ {
        self.insns
            .iter()
            .filter(|i| i.flow_control() == FlowControl::IndirectBranch)
            .map(|i| i.ip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_instruction_and_indexes_boundaries() {
        // 49 3b 66 10  cmp rsp,[r14+10h] ; 76 01  jbe +1 ; c3 ret ; c3 ret
        let f = DecodedFunction::decode(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0x01, 0xc3, 0xc3], 0x1000)
            .unwrap();
        assert_eq!(f.instructions().len(), 4);
        assert_eq!(f.index_at(0x1004), Some(1));
        assert_eq!(f.index_at(0x1005), None);
        assert_eq!(f.branch_into(0x1000, 0x1008), Some((0x1004, 0x1007)));
    }

    #[test]
    fn truncated_or_invalid_bytes_are_reported_with_their_address() {
        // A CMP cut after three bytes.
        assert_eq!(
            DecodedFunction::decode(&[0xc3, 0x49, 0x3b, 0x66], 0x2000).unwrap_err(),
            DecodeError::Invalid {
                entry: 0x2000,
                at: 0x2001
            }
        );
        // 0x06 (PUSH ES) does not exist in 64-bit mode.
        assert!(matches!(
            DecodedFunction::decode(&[0x06], 0x10),
            Err(DecodeError::Invalid { .. })
        ));
        assert_eq!(
            DecodedFunction::decode(&[], 5).unwrap_err(),
            DecodeError::Empty { entry: 5 }
        );
        assert!(matches!(
            DecodedFunction::decode(&[0x90, 0x90], u64::MAX),
            Err(DecodeError::Wraps { .. })
        ));
    }
}
