# Storage nodes: ZFS for the data pool; the host id ZFS requires is derived from the node name so it is stable
# across reinstalls.
{ sendan, ... }:
{
  imports = [ ./common.nix ];

  boot.loader.systemd-boot.enable = true;
  boot.loader.efi.canTouchEfiVariables = true;

  boot.supportedFilesystems = [ "zfs" ];
  boot.zfs.forceImportRoot = false;
  networking.hostId = builtins.substring 0 8 (builtins.hashString "sha256" sendan.node);
  services.zfs.autoScrub.enable = true;
  networking.firewall.allowedTCPPorts = [ 7480 ];
}
