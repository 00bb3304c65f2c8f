# A layout with no disks.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: disk layout 'empty' declares no disks";
  parity = true;
  declaration = lib.recursiveUpdate base { diskLayouts.empty.disko.devices.disk = { }; };
}
