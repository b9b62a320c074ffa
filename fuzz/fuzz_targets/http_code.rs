//! The `http_code` parser: any text gives a code set or an error message, never a panic; a set
//! that parses holds only codes within 100-599, in sorted, merged ranges, and agrees with
//! `contains`.
#![no_main]

use lbsim::model::HttpCodes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match HttpCodes::parse(text) {
        Ok(codes) => {
            let ranges = codes.ranges();
            assert!(!ranges.is_empty(), "`{text}` parsed to an empty set");
            for w in ranges.windows(2) {
                assert!(w[0].1 + 1 < w[1].0, "ranges {w:?} of `{text}` are not merged and sorted");
            }
            for &(lo, hi) in ranges {
                assert!((100..=599).contains(&lo) && lo <= hi && hi <= 599, "range {lo}-{hi} from `{text}`");
            }
            for status in 0..=700u16 {
                let inside = ranges.iter().any(|&(lo, hi)| lo <= status && status <= hi);
                assert_eq!(codes.contains(status), inside, "contains({status}) for `{text}`");
            }
            let again = HttpCodes::parse(&codes.to_string());
            assert_eq!(again.as_ref(), Ok(&codes), "`{text}` does not round-trip through Display");
        }
        Err(msg) => assert!(!msg.is_empty(), "empty error for `{text}`"),
    }
});
