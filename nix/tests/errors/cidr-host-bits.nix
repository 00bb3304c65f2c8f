# A CIDR whose host bits are set is a typo for its network.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: ipPools.rack1-v4.cidr: 10.0.1.5/28 has host bits set; did you mean 10.0.1.0/28?";
  parity = false;
  declaration = lib.recursiveUpdate base { ipPools.rack1-v4.cidr = "10.0.1.5/28"; };
}
