# Disk layouts: disko-shaped device trees whose disks carry a `selector` instead of a device path. The selector is
# resolved against the disks a machine reports when it phones home; this file checks what can be checked before
# that: references between devices, boot disks and selectors that could never tell two disks apart.
let
  b = builtins;
  util = import ./util.nix;

  espTypes = [
    "EF00"
    "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
  ];

  labels = {
    mdadm = "mdadm array";
    zpool = "zpool";
    lvm_vg = "lvm volume group";
  };

  partitionRefs =
    part:
    let
      c = part.content;
    in
    if c == null then
      [ ]
    else if c.type == "mdraid" then
      [ { kind = "mdadm"; name = c.name; } ]
    else if c.type == "zfs" then
      [ { kind = "zpool"; name = c.pool; } ]
    else if c.type == "lvm_pv" then
      [ { kind = "lvm_vg"; name = c.vg; } ]
    else
      [ ];

  contentRefs =
    content:
    if content.type == "gpt" then
      b.concatMap (p: partitionRefs content.partitions.${p}) (b.attrNames content.partitions)
    else
      [ ];
in
rec {
  hasEsp =
    disk:
    b.any (
      p:
      let
        type = disk.content.partitions.${p}.type;
      in
      type != null && b.elem (util.toUpper type) espTypes
    ) (b.attrNames disk.content.partitions);

  # The boot disks a layout declares, or else every disk with an EFI system partition.
  bootDisks =
    layout:
    let
      disks = layout.disko.devices.disk;
    in
    if layout.bootDisks != null then layout.bootDisks else b.filter (n: hasEsp disks.${n}) (b.attrNames disks);

  # Every device reference in a layout: [{ kind = "mdadm" | "zpool" | "lvm_vg"; name; }].
  references =
    devices:
    b.concatMap (n: contentRefs devices.disk.${n}.content) (b.attrNames devices.disk)
    ++ b.concatMap (n: contentRefs devices.mdadm.${n}.content) (b.attrNames devices.mdadm);

  errors =
    name: layout:
    let
      devices = layout.disko.devices;
      disks = devices.disk;
      boot = bootDisks layout;
      refs = references devices;
      subject = "disk layout '${name}'";
    in
    util.optional (disks == { }) "${subject} declares no disks"
    ++ util.optional (disks != { } && boot == [ ])
      "${subject} has no boot disk: set bootDisks or give a disk an EFI system partition (type EF00)"
    ++ b.concatMap (
      d:
      if !(disks ? ${d}) then
        [ "${subject} references disk '${d}' which is not declared in disko.devices.disk" ]
      else
        util.optional (!(hasEsp disks.${d}))
          "${subject}: boot disk '${d}' has no EFI system partition (type EF00)"
    ) boot
    ++ b.concatMap (
      r:
      util.optional (!(devices.${r.kind} ? ${r.name}))
        "${subject} references ${labels.${r.kind}} '${r.name}' which is not declared in disko.devices.${r.kind}"
    ) (util.unique refs)
    ++ b.concatMap (
      kind:
      b.concatMap (
        n:
        util.optional (!(b.elem { inherit kind; name = n; } refs))
          "${subject} declares ${labels.${kind}} '${n}' but nothing is a member of it"
      ) (b.attrNames devices.${kind})
    ) [ "mdadm" "zpool" "lvm_vg" ]
    ++ b.concatMap (
      pair:
      let
        x = b.elemAt pair 0;
        y = b.elemAt pair 1;
      in
      util.optional (disks.${x}.selector == disks.${y}.selector)
        "${subject}: disks '${x}' and '${y}' have the same selector, so they would resolve to the same disk"
    ) (util.pairs (b.attrNames disks));
}
