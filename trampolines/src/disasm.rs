//! Human-readable listings of analysed and generated code, for `gohook` to show a user what it
//! will patch and what it will run.

use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};

/// One line per instruction: `address  bytes  mnemonic operands` (Intel syntax). `code` must be
/// the bytes the instructions were decoded from, starting at `base`; bytes outside it are blank.
pub fn listing(instructions: &[Instruction], code: &[u8], base: u64) -> Vec<String> {
    let mut fmt = IntelFormatter::new();
    fmt.options_mut().set_first_operand_char_index(8);
    instructions
        .iter()
        .map(|i| {
            let mut text = String::new();
            fmt.format(i, &mut text);
            let start = i.ip().wrapping_sub(base) as usize;
            let bytes = code
                .get(start..start.saturating_add(i.len()))
                .map(|b| {
                    b.iter()
                        .map(|x| format!("{x:02x}"))
                        .collect::<Vec<_>>()
                        .join("")
                })
                .unwrap_or_default();
            format!("{:#014x}  {bytes:<20}  {text}", i.ip())
        })
        .collect()
}

/// Decodes and lists `code` placed at `base` (e.g. a generated trampoline or patch bytes).
pub fn listing_of(code: &[u8], base: u64) -> Vec<String> {
    let insns: Vec<Instruction> = Decoder::with_ip(64, code, base, DecoderOptions::NONE)
        .into_iter()
        .collect();
    listing(&insns, code, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_addresses_bytes_and_intel_syntax() {
        let lines = listing_of(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0x02], 0x401000);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("0x000000401000  493b6610"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("cmp") && lines[0].contains("[r14+10h]"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("jbe") && lines[1].contains("401008"),
            "{}",
            lines[1]
        );
    }
}
