//! The kernel command line of a netbooted installer: `sendan.server=`, `sendan.token=` (put there by the iPXE
//! script) and `sendan.mode=` (put there by the operator's installer image configuration).

use std::collections::BTreeMap;

/// The `sendan.*` parameters of a kernel command line, by name without the prefix.
pub fn parse(cmdline: &str) -> BTreeMap<String, String> {
    cmdline
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("sendan.")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sendan_parameters_are_picked_out_of_the_command_line() {
        let p = super::parse(
            "initrd=initrd init=/nix/store/x/init loglevel=4 sendan.server=http://10.0.0.1:7770 sendan.token=sendan-boot-ab\n",
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p["server"], "http://10.0.0.1:7770");
        assert_eq!(p["token"], "sendan-boot-ab");
    }
}
