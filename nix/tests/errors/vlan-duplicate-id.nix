# Two VLANs with one id.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: vlans 'backup' and 'prod' both use id 20";
  parity = true;
  declaration = lib.recursiveUpdate base { vlans.backup.id = 20; };
}
