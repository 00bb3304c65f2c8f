# Two disks with the same (default) selector would always resolve to the same disk.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: disk layout 'single': disks 'fallback' and 'root' have the same selector, so they would resolve to the same disk";
  parity = true;
  declaration = lib.recursiveUpdate base {
    diskLayouts.single.disko.devices.disk.fallback.content =
      base.diskLayouts.single.disko.devices.disk.root.content;
  };
}
