# MACs are checked for their shape.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: enrollmentRules.cp-1.match.macs[0] must be a MAC address such as 52:54:00:12:34:56, got the string \"52-54-00-00-01-01\"";
  parity = false;
  declaration = lib.recursiveUpdate base { enrollmentRules.cp-1.match.macs = [ "52-54-00-00-01-01" ]; };
}
