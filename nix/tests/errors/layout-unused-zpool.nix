# A zpool that no partition belongs to.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: disk layout 'single' declares zpool 'tank' but nothing is a member of it";
  parity = true;
  declaration = lib.recursiveUpdate base { diskLayouts.single.disko.devices.zpool.tank.mode = "mirror"; };
}
