import { mount } from 'enzyme';
import Modal from './Modal';

it('renders its title', () => {
  expect(mount(<Modal title="Hi" />).find('h2').text()).toBe('Hi');
});
