# A Redfish BMC whose address is not a URL.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1: bmc address '10.0.9.5' is not an http:// or https:// URL (driver redfish)";
  parity = true;
  declaration = lib.recursiveUpdate base {
    nodes.cp-1.bmc = { driver = "redfish"; address = "10.0.9.5"; user = "admin"; passwordFile = "/etc/sendan/bmc/cp-1"; };
  };
}
