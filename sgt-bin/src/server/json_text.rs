//! Reading the structure of JSON text without parsing it: for checks that must cost no
//! allocation (how deep a log line nests, what a tree of rows would cost).

/// The bytes of `json` outside strings, in order, with each string standing as its opening
/// `"` alone. Brackets, commas and colons inside strings (escaped quotes included) are text
/// and do not appear.
pub(crate) fn outside_strings(json: &str) -> impl Iterator<Item = u8> + '_ {
    let (mut in_string, mut escaped) = (false, false);
    json.bytes().filter(move |&byte| {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            return false;
        }
        in_string = byte == b'"';
        true
    })
}

#[cfg(test)]
mod tests {
    use super::outside_strings;

    #[test]
    fn strings_stand_as_their_opening_quote() {
        let seen: Vec<u8> = outside_strings(r#"{"a":"[,\"{:}]","b":[1,2]}"#).collect();
        assert_eq!(seen, br#"{":",":[1,2]}"#.to_vec());
    }
}
