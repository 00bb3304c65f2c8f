# Three nodes outside any pool want an address from a /30, which has two.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: ip pool 'oob' (10.0.9.0/30) has no free address for bmc-3";
  parity = false;
  declaration =
    let
      bmc = {
        class = "control";
        rack = "rack1";
        ipPool = "oob";
      };
    in
    lib.recursiveUpdate base {
      ipPools.oob.cidr = "10.0.9.0/30";
      nodes = {
        bmc-1 = bmc;
        bmc-2 = bmc;
        bmc-3 = bmc;
      };
    };
}
