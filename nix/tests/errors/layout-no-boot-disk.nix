# No disk has an EFI system partition and bootDisks is not set.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: disk layout 'single' has no boot disk: set bootDisks or give a disk an EFI system partition (type EF00)";
  parity = true;
  declaration = lib.recursiveUpdate base { diskLayouts.single.disko.devices.disk.root.content.partitions.ESP.type = "8300"; };
}
