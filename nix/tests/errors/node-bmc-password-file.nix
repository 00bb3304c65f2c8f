# A BMC password file that is not an absolute path (it is read on the servers, wherever they run).
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1: bmc passwordFile 'bmc/cp-1' is not an absolute path";
  parity = true;
  declaration = lib.recursiveUpdate base {
    nodes.cp-1.bmc = { driver = "ipmi"; address = "10.0.9.5:623"; user = "admin"; passwordFile = "bmc/cp-1"; };
  };
}
