# Peers need the cluster's own ASN.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: bgp declares peers but no asn for the cluster";
  parity = true;
  declaration = lib.recursiveUpdate base { bgp.asn = null; };
}
