# Reserved entries are addresses or address ranges.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: ipPools.rack2-v4.reserved[0]: '10.0.2.9..10.0.2.12' is not an IPv4 address or range such as 10.0.1.1 or 10.0.1.1-10.0.1.9";
  parity = false;
  declaration = lib.recursiveUpdate base { ipPools.rack2-v4.reserved = [ "10.0.2.9..10.0.2.12" ]; };
}
