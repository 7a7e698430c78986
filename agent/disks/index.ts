/**
 * Finding the volume's device on EC2 and elsewhere: the machine's block devices with their EBS
 * mapping names and volume ids, the selectors of volume.device, volume.devices and
 * volume.instanceStore, and the md array decisions.
 */
export * from './identify.js';
export * from './inventory.js';
export * from './md.js';
export * from './md-facts.js';
export * from './names.js';
export * from './selectors.js';
export * from './sysfs.js';
